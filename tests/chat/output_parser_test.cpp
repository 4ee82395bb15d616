// Reasoning and tool-call extraction from streamed output: every test feeds the
// same text whole, one byte at a time, and split at every position, since tags
// can arrive split across tokens.
#include <gtest/gtest.h>

#include "chat/output_parser.h"

namespace nativelm::chat {
namespace {

using Chunks = std::vector<std::string>;

std::vector<Chunks> splits(const std::string& text) {
  std::vector<Chunks> out{{text}};
  Chunks bytes;
  for (char c : text) bytes.emplace_back(1, c);
  out.push_back(bytes);
  for (size_t i = 1; i < text.size(); ++i) out.push_back({text.substr(0, i), text.substr(i)});
  return out;
}

template <typename Parser>
OutputDelta run(Parser& p, const Chunks& chunks) {
  OutputDelta all;
  for (const auto& c : chunks) all.append(p.feed(c));
  all.append(p.finish());
  return all;
}

std::function<std::string()> counter_ids() {
  auto n = std::make_shared<int>(0);
  return [n] { return "call_" + std::to_string((*n)++); };
}

void expect_reasoning(const std::string& text, const std::string& reasoning, const std::string& content,
                      bool starts_in_reasoning = false) {
  for (const auto& chunks : splits(text)) {
    ReasoningParser::Options o;
    o.starts_in_reasoning = starts_in_reasoning;
    ReasoningParser p(o);
    OutputDelta d = run(p, chunks);
    EXPECT_EQ(d.reasoning, reasoning) << "split: " << chunks.size() << " chunks of " << text;
    EXPECT_EQ(d.content, content) << "split: " << chunks.size() << " chunks of " << text;
  }
}

TEST(ReasoningParser, SeparatesThinkBlock) {
  expect_reasoning("<think>\nLet me add.\n2+2=4\n</think>\n\nThe answer is 4.", "Let me add.\n2+2=4",
                   "The answer is 4.");
}

TEST(ReasoningParser, EmptyThinkBlockLeavesOnlyContent) {
  expect_reasoning("<think>\n\n</think>\n\nHi there.", "", "Hi there.");
}

TEST(ReasoningParser, NoTagsMeansAllContent) {
  expect_reasoning("Just an answer with <b>markup</b> and a < sign.", "",
                   "Just an answer with <b>markup</b> and a < sign.");
  expect_reasoning("Mentions <think> later.", "", "Mentions <think> later.");
}

TEST(ReasoningParser, PromptOpenedBlock) {
  expect_reasoning("pondering...\n</think>\n\nDone.", "pondering...", "Done.", true);
}

TEST(ReasoningParser, UnterminatedBlockStaysReasoning) {
  expect_reasoning("<think>still thinking <", "still thinking <", "");
}

TEST(ReasoningParser, HoldsBackOnlyPossibleTagPrefixes) {
  ReasoningParser p;
  EXPECT_TRUE(p.feed("<thi").empty());
  OutputDelta d = p.feed("nk>abc</th");
  EXPECT_EQ(d.reasoning, "abc");
  d = p.feed("ink>x");
  EXPECT_EQ(d.content, "x");
}

void expect_tools(ToolCallFormat f, const std::string& text, const std::string& content,
                  const std::vector<std::pair<std::string, std::string>>& calls) {
  for (const auto& chunks : splits(text)) {
    ToolCallParser p(f, counter_ids());
    OutputDelta d = run(p, chunks);
    EXPECT_EQ(d.content, content) << chunks.size() << " chunks of " << text;
    ASSERT_EQ(d.tool_calls.size(), calls.size()) << chunks.size() << " chunks of " << text;
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_EQ(d.tool_calls[i].id, "call_" + std::to_string(i));
      EXPECT_EQ(d.tool_calls[i].name, calls[i].first);
      EXPECT_EQ(d.tool_calls[i].arguments, calls[i].second);
    }
  }
}

TEST(ToolCallParser, HermesSingleCall) {
  expect_tools(ToolCallFormat::Hermes,
               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", "",
               {{"get_weather", R"({"city": "Paris"})"}});
}

TEST(ToolCallParser, HermesTextAndSeveralCalls) {
  expect_tools(ToolCallFormat::Hermes,
               "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, 2.5, \"ü\"]}}\n</tool_call>\n"
               "<tool_call>\n{\"name\": \"b\", \"arguments\": \"{\\\"raw\\\": true}\"}\n</tool_call>",
               "Let me check.", {{"a", R"({"x": [1, 2.5, "ü"]})"}, {"b", R"({"raw": true})"}});
}

TEST(ToolCallParser, HermesInvalidJsonStaysContent) {
  expect_tools(ToolCallFormat::Hermes, "<tool_call>not json</tool_call>", "<tool_call>not json</tool_call>", {});
  expect_tools(ToolCallFormat::Hermes, "cut <tool_call>{\"name\"", "cut <tool_call>{\"name\"", {});
}

TEST(ToolCallParser, Llama3Json) {
  expect_tools(ToolCallFormat::Llama3Json, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "",
               {{"get_weather", R"({"city": "Paris"})"}});
  expect_tools(ToolCallFormat::Llama3Json,
               "<|python_tag|>{\"name\": \"a\", \"parameters\": {}}; {\"name\": \"b\", \"parameters\": {\"n\": 1}}", "",
               {{"a", "{}"}, {"b", R"({"n": 1})"}});
}

TEST(ToolCallParser, Llama3ProseIsContent) {
  expect_tools(ToolCallFormat::Llama3Json, "The weather is {unknown}.", "The weather is {unknown}.", {});
  expect_tools(ToolCallFormat::Llama3Json, "{not a call}", "{not a call}", {});
}

TEST(OutputParser, ReasoningThenToolCall) {
  std::string text =
      "<think>\nNeed weather.\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
      "{\"city\": \"Paris\"}}\n</tool_call>";
  for (const auto& chunks : splits(text)) {
    OutputParser p(ReasoningParser::Options{}, ToolCallFormat::Hermes, counter_ids());
    OutputDelta d = run(p, chunks);
    EXPECT_EQ(d.reasoning, "Need weather.");
    EXPECT_EQ(d.content, "");
    ASSERT_EQ(d.tool_calls.size(), 1u);
    EXPECT_EQ(d.tool_calls[0].to_openai().dump(),
              R"({"id":"call_0","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}})");
  }
}

TEST(ToolCallFormat, DetectedFromTemplate) {
  EXPECT_EQ(detect_tool_call_format("...<tool_call>\n{\"name\": ...</tool_call>"), ToolCallFormat::Hermes);
  EXPECT_EQ(detect_tool_call_format("{{ '<|python_tag|>' }}"), ToolCallFormat::Llama3Json);
  EXPECT_EQ(detect_tool_call_format("{{ messages }}"), ToolCallFormat::None);
}

}  // namespace
}  // namespace nativelm::chat
