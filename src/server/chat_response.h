#pragma once
// A chat completion choice in OpenAI's shape, whole or as stream chunks, from
// the generated text run through the request's output parsers:
//   message: {"role", "content" (null when the reply is only tool calls),
//             "reasoning_content"?, "tool_calls"?: [{"id", "type", "function"}]}
//   stream deltas: {"reasoning_content"}, {"content"}, and per tool call
//             {"tool_calls": [{"index", "id", "type", "function": {"name", "arguments": ""}}]}
//             then {"tool_calls": [{"index", "function": {"arguments"}}]}.
// A reply that stopped after calling tools finishes with "tool_calls".
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "engine/request.h"
#include "server/generation.h"
#include "server/output_parsing.h"

namespace nativelm::server {

// The "finish_reason" to report: a stop after tool calls becomes "tool_calls";
// "length" and "abort" stay as they are (as in SGLang).
std::string chat_finish_reason(const std::string& engine_reason, bool made_tool_calls);

// One non-streaming choice: {"index", "message", "logprobs", "finish_reason", "matched_stop"}.
// `parser` must be fresh; `logprobs` is the formatted logprobs or null.
nlohmann::json chat_choice(size_t index, const ChoiceResult& result, ChoiceParser& parser, nlohmann::json logprobs);

// The stream chunks of one choice, update by update.
class ChatStreamChoice {
 public:
  // `base` is the chunk envelope (id, object, created, model, ...).
  ChatStreamChoice(nlohmann::json base, size_t index, ChoiceParser parser);

  // The chunks for one update: the role chunk first time, then the deltas,
  // then (once finished) the deltas held back and the finish chunk. `logprobs`
  // (null unless requested) goes on the update's first delta.
  std::vector<nlohmann::json> chunks(const RequestUpdate& update, nlohmann::json logprobs);

 private:
  nlohmann::json chunk(nlohmann::json delta, nlohmann::json logprobs) const;
  void add_deltas(const chat::OutputDelta& d, nlohmann::json& logprobs, std::vector<nlohmann::json>& out);

  nlohmann::json base_;
  size_t index_;
  ChoiceParser parser_;
  bool started_ = false;
  size_t tool_calls_sent_ = 0;
};

}  // namespace nativelm::server
