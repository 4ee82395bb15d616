#include "server/output_parsing.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "server/api_error.h"
#include "server/json_fields.h"
#include "util/error.h"

namespace nativelm::server {

namespace {

struct ReasoningName {
  const char* name;
  ReasoningParserKind kind;
};
constexpr ReasoningName kReasoningNames[] = {{"auto", ReasoningParserKind::Auto},
                                             {"none", ReasoningParserKind::None},
                                             {"qwen3", ReasoningParserKind::Qwen3},
                                             {"qwen3-thinking", ReasoningParserKind::Forced},
                                             {"deepseek-r1", ReasoningParserKind::Forced}};

struct ToolName {
  const char* name;
  std::optional<chat::ToolCallFormat> format;
};
// SGLang calls the Hermes-style <tool_call> parser "qwen" (formerly "qwen25"); vLLM calls it "hermes".
const ToolName kToolNames[] = {{"auto", std::nullopt},
                               {"none", chat::ToolCallFormat::None},
                               {"qwen", chat::ToolCallFormat::Hermes},
                               {"qwen25", chat::ToolCallFormat::Hermes},
                               {"hermes", chat::ToolCallFormat::Hermes},
                               {"llama3", chat::ToolCallFormat::Llama3Json}};

bool has_tools(const nlohmann::json& body) {
  auto it = body.find("tools");
  return it != body.end() && it->is_array() && !it->empty();
}

bool tool_choice_is_none(const nlohmann::json& body) {
  auto it = body.find("tool_choice");
  return it != body.end() && it->is_string() && *it == "none";
}

bool thinking_disabled(const nlohmann::json& body) {
  const nlohmann::json* kwargs = get_object(body, "chat_template_kwargs");
  if (!kwargs) return false;
  // Qwen3 templates read enable_thinking; DeepSeek V3.1 templates read thinking.
  for (const char* key : {"enable_thinking", "thinking"}) {
    auto it = kwargs->find(key);
    if (it != kwargs->end() && it->is_boolean() && !it->get<bool>()) return true;
  }
  return false;
}

// The template's generation prompt already opened the block ("...<think>\n").
bool prompt_opens_reasoning(std::string_view prompt, std::string_view open) {
  size_t end = prompt.find_last_not_of(" \t\r\n");
  if (end == std::string_view::npos) return false;
  return prompt.substr(0, end + 1).ends_with(open);
}

std::optional<chat::ReasoningParser::Options> reasoning_for(const nlohmann::json& body, ReasoningParserKind kind,
                                                            std::string_view template_source,
                                                            std::string_view prompt_text) {
  if (kind == ReasoningParserKind::None) return std::nullopt;
  if (!get_bool(body, "separate_reasoning").value_or(true)) return std::nullopt;
  chat::ReasoningParser::Options options;
  if (kind == ReasoningParserKind::Auto && template_source.find(options.open) == std::string_view::npos)
    return std::nullopt;
  if (kind != ReasoningParserKind::Forced && thinking_disabled(body)) return std::nullopt;
  options.starts_in_reasoning =
      kind == ReasoningParserKind::Forced || prompt_opens_reasoning(prompt_text, options.open);
  return options;
}

void check_named_tool(const nlohmann::json& choice, const nlohmann::json& body) {
  auto type = choice.find("type");
  auto fn = choice.find("function");
  if (type == choice.end() || *type != "function" || fn == choice.end() || !fn->is_object() ||
      !fn->contains("name") || !(*fn)["name"].is_string())
    bad_param("tool_choice",
              "'tool_choice' must be \"none\", \"auto\", \"required\" or "
              "{\"type\": \"function\", \"function\": {\"name\": ...}}");
  const std::string name = (*fn)["name"].get<std::string>();
  for (const auto& tool : body["tools"]) {
    auto f = tool.find("function");
    if (f == tool.end() || !f->is_object()) continue;
    auto tool_name = f->find("name");
    if (tool_name != f->end() && *tool_name == name) return;
  }
  bad_param("tool_choice", fmt::format("'tool_choice' names the function '{}', which is not in 'tools'", name));
}

}  // namespace

std::vector<std::string> reasoning_parser_names() {
  std::vector<std::string> out;
  for (const auto& n : kReasoningNames) out.emplace_back(n.name);
  return out;
}

std::vector<std::string> tool_call_parser_names() {
  std::vector<std::string> out;
  for (const auto& n : kToolNames) out.emplace_back(n.name);
  return out;
}

ReasoningParserKind parse_reasoning_parser(const std::string& name) {
  for (const auto& n : kReasoningNames)
    if (name == n.name) return n.kind;
  fail("unknown reasoning parser '{}'; choose one of: {}", name, fmt::join(reasoning_parser_names(), ", "));
}

std::optional<chat::ToolCallFormat> parse_tool_call_parser(const std::string& name) {
  for (const auto& n : kToolNames)
    if (name == n.name) return n.format;
  fail("unknown tool call parser '{}'; choose one of: {}", name, fmt::join(tool_call_parser_names(), ", "));
}

void check_tool_choice(const nlohmann::json& body) {
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return;
  const bool tools = has_tools(body);
  if (it->is_string()) {
    const std::string choice = it->get<std::string>();
    if (choice != "none" && choice != "auto" && choice != "required")
      bad_param("tool_choice", fmt::format("'tool_choice' must be \"none\", \"auto\" or \"required\", got \"{}\"",
                                           choice));
    if (choice == "required" && !tools)
      bad_param("tool_choice", "'tool_choice': \"required\" needs a non-empty 'tools' list");
    return;
  }
  if (!it->is_object())
    bad_param("tool_choice", fmt::format("'tool_choice' must be a string or an object, got {}", json_type_name(*it)));
  if (!tools) bad_param("tool_choice", "'tool_choice' names a function but 'tools' is empty");
  check_named_tool(*it, body);
}

OutputParsing output_parsing_for(const nlohmann::json& body, const OutputParserSettings& settings,
                                 std::string_view template_source, std::string_view prompt_text) {
  OutputParsing out;
  out.reasoning = reasoning_for(body, settings.reasoning, template_source, prompt_text);
  if (has_tools(body) && !tool_choice_is_none(body))
    out.tool_calls = settings.tool_calls.value_or(chat::detect_tool_call_format(template_source));
  return out;
}

ChoiceParser::ChoiceParser(const OutputParsing& parsing, std::function<std::string()> make_id)
    : parses_tool_calls_(parsing.tool_calls != chat::ToolCallFormat::None) {
  if (parsing.any()) parser_.emplace(parsing.reasoning, parsing.tool_calls, std::move(make_id));
}

chat::OutputDelta ChoiceParser::feed(std::string_view text) {
  if (parser_) return parser_->feed(text);
  chat::OutputDelta out;
  out.content = std::string(text);
  return out;
}

chat::OutputDelta ChoiceParser::finish() { return parser_ ? parser_->finish() : chat::OutputDelta{}; }

}  // namespace nativelm::server
