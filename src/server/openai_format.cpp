#include "server/openai_format.h"

#include <fmt/format.h>

#include <chrono>
#include <mutex>
#include <random>

namespace nativelm::server {

namespace {

std::string token_text(const Tokenizer& tokenizer, int32_t id) {
  const int32_t one[] = {id};
  return tokenizer.decode(one, /*skip_special_tokens=*/false);
}

json byte_values(const std::string& text) {
  json bytes = json::array();
  for (unsigned char c : text) bytes.push_back(static_cast<int>(c));
  return bytes;
}

}  // namespace

std::string make_id(const std::string& prefix) {
  static std::mutex mutex;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard lock(mutex);
  return fmt::format("{}{:016x}{:016x}", prefix, rng(), rng());
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string dump(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string sse_event(const json& value) { return "data: " + dump(value) + "\n\n"; }

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

void add_finish_fields(json& choice, const std::string& finish_reason, const std::optional<std::string>& matched_stop,
                       const std::optional<int32_t>& matched_stop_token) {
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  if (matched_stop) choice["matched_stop"] = *matched_stop;
  else if (matched_stop_token) choice["matched_stop"] = *matched_stop_token;
  else choice["matched_stop"] = nullptr;
}

json completion_logprobs(const Tokenizer& tokenizer, const std::vector<TokenOutput>& tokens, int32_t top,
                         int64_t text_offset) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const auto& t : tokens) {
    const std::string text = token_text(tokenizer, t.id);
    out["tokens"].push_back(text);
    out["token_logprobs"].push_back(t.logprob);
    json alternatives = json::object();
    for (size_t k = 0; k < t.top.size() && static_cast<int32_t>(k) < top; ++k)
      alternatives[token_text(tokenizer, t.top[k].first)] = t.top[k].second;
    out["top_logprobs"].push_back(top > 0 ? alternatives : json(nullptr));
    out["text_offset"].push_back(text_offset);
    text_offset += static_cast<int64_t>(text.size());
  }
  return out;
}

json chat_logprobs(const Tokenizer& tokenizer, const std::vector<TokenOutput>& tokens, int32_t top) {
  json content = json::array();
  for (const auto& t : tokens) {
    const std::string text = token_text(tokenizer, t.id);
    json alternatives = json::array();
    for (size_t k = 0; k < t.top.size() && static_cast<int32_t>(k) < top; ++k) {
      const std::string alt = token_text(tokenizer, t.top[k].first);
      alternatives.push_back({{"token", alt}, {"logprob", t.top[k].second}, {"bytes", byte_values(alt)}});
    }
    content.push_back(
        {{"token", text}, {"logprob", t.logprob}, {"bytes", byte_values(text)}, {"top_logprobs", alternatives}});
  }
  return {{"content", content}};
}

}  // namespace nativelm::server
