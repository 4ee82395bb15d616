#pragma once
// Turns tool calls in streamed model output into OpenAI `tool_calls`:
//  - Hermes/Qwen: <tool_call>{"name": ..., "arguments": {...}}</tool_call> blocks
//    anywhere in the text (tags may be split across chunks);
//  - Llama 3: the whole reply is a JSON object {"name": ..., "parameters": {...}}
//    (optionally after <|python_tag|>, several joined by ';'). Such a reply is held
//    back until finish(), since only the complete text tells JSON from prose.
// A block that is not valid JSON is passed through as content, not dropped.
#include <functional>
#include <string>
#include <string_view>

#include "chat/output_delta.h"

namespace nativelm::chat {

enum class ToolCallFormat { None, Hermes, Llama3Json };

// Guesses the format from a chat template's text (what it tells the model to write).
ToolCallFormat detect_tool_call_format(std::string_view template_source);

class ToolCallParser {
 public:
  // make_id gives each call its id; by default "call_" and 24 random characters.
  explicit ToolCallParser(ToolCallFormat format, std::function<std::string()> make_id = {});

  OutputDelta feed(std::string_view chunk);
  OutputDelta finish();

 private:
  enum class State { Start, Text, InCall, HoldAll };
  bool step(OutputDelta& out);
  void emit_text(std::string_view text, OutputDelta& out);
  bool parse_call(std::string_view json_text, OutputDelta& out);
  bool parse_llama(std::string_view text, OutputDelta& out);

  ToolCallFormat format_;
  std::function<std::string()> make_id_;
  State state_;
  std::string buf_;
  std::string pending_space_;  // whitespace that only matters if more text follows
  bool saw_call_ = false;
};

}  // namespace nativelm::chat
