#pragma once
// Which output parsers a chat request gets: `<think>` reasoning split into
// `reasoning_content`, and tool calls taken out of the text. The serve flags
// --reasoning-parser and --tool-call-parser (named as in SGLang) choose them;
// "auto", the default, reads the chat template.
#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chat/output_parser.h"

namespace nativelm::server {

enum class ReasoningParserKind {
  Auto,    // split reasoning when the chat template mentions <think>
  None,    // never split
  Qwen3,   // <think>...</think>, off when chat_template_kwargs.enable_thinking is false
  Forced,  // the reply starts inside the reasoning block (qwen3-thinking, deepseek-r1)
};

struct OutputParserSettings {
  ReasoningParserKind reasoning = ReasoningParserKind::Auto;
  std::optional<chat::ToolCallFormat> tool_calls;  // nullopt: detected from the chat template
};

// The names the serve flags accept.
std::vector<std::string> reasoning_parser_names();
std::vector<std::string> tool_call_parser_names();
// Throws nativelm::Error naming the accepted values for an unknown name.
ReasoningParserKind parse_reasoning_parser(const std::string& name);
std::optional<chat::ToolCallFormat> parse_tool_call_parser(const std::string& name);

// What one request's output goes through.
struct OutputParsing {
  std::optional<chat::ReasoningParser::Options> reasoning;  // nullopt: <think> stays in the content
  chat::ToolCallFormat tool_calls = chat::ToolCallFormat::None;

  bool any() const { return reasoning.has_value() || tool_calls != chat::ToolCallFormat::None; }
};

// Validates `tool_choice`: "none", "auto", "required" or
// {"type": "function", "function": {"name": <one of the tools>}} (400 otherwise).
void check_tool_choice(const nlohmann::json& body);

// Decides the parsers for a request from the server settings, the chat
// template's source and the rendered prompt (a prompt ending in "<think>" means
// the reply starts inside the reasoning block). Tool calls are parsed only when
// the request has tools and tool_choice is not "none"; reasoning is not split
// when the request says "separate_reasoning": false.
OutputParsing output_parsing_for(const nlohmann::json& body, const OutputParserSettings& settings,
                                 std::string_view template_source, std::string_view prompt_text);

// One choice's generated text through the request's parsers; with none, the
// text passes through unchanged as content.
class ChoiceParser {
 public:
  // make_id names the tool calls (default "call_" + 24 random characters).
  explicit ChoiceParser(const OutputParsing& parsing, std::function<std::string()> make_id = {});

  chat::OutputDelta feed(std::string_view text);
  chat::OutputDelta finish();
  bool parses_tool_calls() const { return parses_tool_calls_; }

 private:
  std::optional<chat::OutputParser> parser_;
  bool parses_tool_calls_ = false;
};

}  // namespace nativelm::server
