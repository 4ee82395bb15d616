#include "server/chat_response.h"

#include <utility>

#include "server/api_error.h"
#include "server/openai_format.h"

namespace nativelm::server {

namespace {

json message_json(const chat::OutputDelta& d) {
  json m = {{"role", "assistant"}};
  m["content"] = d.content.empty() && !d.tool_calls.empty() ? json(nullptr) : json(d.content);
  if (!d.reasoning.empty()) m["reasoning_content"] = d.reasoning;
  if (!d.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& c : d.tool_calls) calls.push_back(json(c.to_openai()));
    m["tool_calls"] = std::move(calls);
  }
  return m;
}

// A tool call's finish replaces the stop that ended it, so no matched_stop.
void add_chat_finish(json& choice, const std::string& engine_reason, bool made_tool_calls,
                     const std::optional<std::string>& matched_stop, const std::optional<int32_t>& matched_token) {
  const std::string reason = chat_finish_reason(engine_reason, made_tool_calls);
  if (reason == "tool_calls") add_finish_fields(choice, reason, std::nullopt, std::nullopt);
  else add_finish_fields(choice, reason, matched_stop, matched_token);
}

json tool_call_delta(size_t index, json fields) {
  fields["index"] = index;
  return {{"tool_calls", json::array({std::move(fields)})}};
}

}  // namespace

std::string chat_finish_reason(const std::string& engine_reason, bool made_tool_calls) {
  return made_tool_calls && engine_reason == "stop" ? "tool_calls" : engine_reason;
}

json chat_choice(size_t index, const ChoiceResult& result, ChoiceParser& parser, json logprobs) {
  chat::OutputDelta all = parser.feed(result.text);
  all.append(parser.finish());
  json choice = {{"index", index}, {"message", message_json(all)}, {"logprobs", std::move(logprobs)}};
  add_chat_finish(choice, result.finish_reason, !all.tool_calls.empty(), result.matched_stop,
                  result.matched_stop_token);
  return choice;
}

ChatStreamChoice::ChatStreamChoice(json base, size_t index, ChoiceParser parser)
    : base_(std::move(base)), index_(index), parser_(std::move(parser)) {}

json ChatStreamChoice::chunk(json delta, json logprobs) const {
  json c = base_;
  json choice = {{"index", index_}, {"delta", std::move(delta)}, {"logprobs", std::move(logprobs)},
                 {"finish_reason", nullptr}};
  c["choices"] = json::array({std::move(choice)});
  return c;
}

void ChatStreamChoice::add_deltas(const chat::OutputDelta& d, json& logprobs, std::vector<json>& out) {
  auto emit = [&](json delta) { out.push_back(chunk(std::move(delta), std::exchange(logprobs, nullptr))); };
  if (!d.reasoning.empty()) emit({{"reasoning_content", d.reasoning}});
  if (!d.content.empty()) emit({{"content", d.content}});
  // OpenAI sends a call's id and name first, then its arguments.
  for (const auto& call : d.tool_calls) {
    const size_t k = tool_calls_sent_++;
    emit(tool_call_delta(k, {{"id", call.id}, {"type", "function"},
                             {"function", {{"name", call.name}, {"arguments", ""}}}}));
    emit(tool_call_delta(k, {{"function", {{"arguments", call.arguments}}}}));
  }
}

std::vector<json> ChatStreamChoice::chunks(const RequestUpdate& u, json logprobs) {
  if (!u.error.empty()) return {error_body(500, u.error)};
  std::vector<json> out;
  if (!started_) {
    started_ = true;
    out.push_back(chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  }
  add_deltas(parser_.feed(u.text), logprobs, out);
  if (u.finished) add_deltas(parser_.finish(), logprobs, out);
  // Tokens whose text is held back (a partial tag or character) still report their logprobs.
  if (!logprobs.is_null()) out.push_back(chunk({{"content", ""}}, std::move(logprobs)));
  if (u.finished) {
    json last = chunk(json::object(), nullptr);
    add_chat_finish(last["choices"][0], u.finish_reason, tool_calls_sent_ > 0, u.matched_stop,
                    u.matched_stop_token);
    out.push_back(std::move(last));
  }
  return out;
}

}  // namespace nativelm::server
