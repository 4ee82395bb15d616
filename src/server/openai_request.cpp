#include "server/openai_request.h"

#include <fmt/format.h>

#include <algorithm>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "server/sampling_fields.h"

namespace nativelm::server {

OpenAiRequest read_openai_request(const json& body, const ServerContext& ctx) {
  OpenAiRequest r;
  r.n = static_cast<int>(get_int_in(body, "n", 1, 128).value_or(1));
  r.stream = get_bool(body, "stream").value_or(false);
  if (const json* options = get_object(body, "stream_options"))
    r.include_usage = get_bool(*options, "include_usage").value_or(false);
  r.max_tokens = get_int_in(body, "max_tokens", 1, INT32_MAX);
  if (auto v = get_int_in(body, "max_completion_tokens", 1, INT32_MAX)) r.max_tokens = v;
  SamplingParams& p = r.input.params;
  p = ctx.model.defaults.base_params();
  read_common_sampling(body, ctx.vocab_size(), p);
  if (auto v = get_int_in(body, "min_tokens", 0, INT32_MAX)) p.min_new_tokens = static_cast<int32_t>(*v);
  r.input.skip_special_tokens = get_bool(body, "skip_special_tokens").value_or(true);
  r.input.logit_bias = read_logit_bias(body, ctx.vocab_size());
  return r;
}

void resolve_max_tokens(OpenAiRequest& r, const std::vector<std::vector<int32_t>>& prompts, int64_t default_max,
                        const ServerContext& ctx) {
  const int64_t context = ctx.context_length();
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const int64_t prompt_len = static_cast<int64_t>(longest);
  if (prompt_len >= context)
    bad_param("messages", fmt::format("This model's maximum context length is {} tokens. However, your prompt has "
                                      "{} tokens, which leaves no room for the completion.",
                                      context, prompt_len));
  const int64_t max_tokens = r.max_tokens ? *r.max_tokens : (default_max >= 0 ? default_max : context - prompt_len);
  if (prompt_len + max_tokens > context)
    bad_param("max_tokens",
              fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                          "({} in the prompt, {} for the completion). Please reduce the length of the prompt or "
                          "the completion.",
                          context, prompt_len + max_tokens, prompt_len, max_tokens));
  r.input.params.max_new_tokens = static_cast<int32_t>(max_tokens);
  validate_sampling(r.input.params);
}

std::vector<int32_t> checked_ids(const json& ids, const std::string& param, int64_t vocab_size) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    if (!id.is_number_integer())
      bad_param(param, fmt::format("'{}' token ids must be integers, got {}", param, json_type_name(id)));
    const int64_t v = id.get<int64_t>();
    if (v < 0 || v >= vocab_size)
      bad_param(param, fmt::format("token id {} in '{}' is outside the vocabulary [0, {})", v, param, vocab_size));
    out.push_back(static_cast<int32_t>(v));
  }
  if (out.empty()) bad_param(param, fmt::format("'{}' must not be an empty list of token ids", param));
  return out;
}

Prompts read_prompts(const json& body, const ServerContext& ctx) {
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) bad_param("prompt", "'prompt' is required");
  const Tokenizer& tok = *ctx.model.tokenizer;
  Prompts out;
  auto add_text = [&](const std::string& text) {
    out.ids.push_back(tok.encode(text, /*add_special_tokens=*/true));
    out.texts.push_back(text);
  };
  auto add_ids = [&](const json& ids) {
    out.ids.push_back(checked_ids(ids, "prompt", ctx.vocab_size()));
    out.texts.push_back(tok.decode(out.ids.back(), false));
  };
  const json& prompt = *it;
  if (prompt.is_string()) {
    add_text(prompt.get<std::string>());
  } else if (prompt.is_array() && !prompt.empty()) {
    if (prompt[0].is_number()) {
      add_ids(prompt);
    } else {
      for (const auto& item : prompt) {
        if (item.is_string()) add_text(item.get<std::string>());
        else if (item.is_array()) add_ids(item);
        else bad_param("prompt", "'prompt' must be a string, a list of strings, a list of token ids or a list of "
                                 "token-id lists");
      }
    }
  } else {
    bad_param("prompt", fmt::format("'prompt' must be a non-empty string, list of strings, list of token ids or list "
                                    "of token-id lists, got {}",
                                    prompt.is_array() ? "an empty list" : json_type_name(prompt)));
  }
  for (const auto& ids : out.ids)
    if (ids.empty()) bad_param("prompt", "the prompt tokenizes to no tokens");
  return out;
}

}  // namespace nativelm::server
