// Chat completion choices assembled from fixed model output, whole and
// streamed, through the functions the /v1/chat/completions route uses: the
// model under test cannot be made to call a tool, so the output is given here.
#include <gtest/gtest.h>

#include "server/chat_response.h"

namespace nativelm::server {
namespace {

using chat::ToolCallFormat;
using nlohmann::json;

constexpr const char* kThinkAndCall =
    "<think>\nThe user wants the weather.\n</think>\n\n"
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>";
constexpr const char* kTextAndTwoCalls =
    "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
    "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";

OutputParsing qwen_parsing(bool tools = true) {
  OutputParsing p;
  p.reasoning = chat::ReasoningParser::Options{};
  p.tool_calls = tools ? ToolCallFormat::Hermes : ToolCallFormat::None;
  return p;
}

ChoiceParser counting_parser(const OutputParsing& parsing) {
  auto n = std::make_shared<int>(0);
  return ChoiceParser(parsing, [n] { return "call_" + std::to_string((*n)++); });
}

ChoiceResult finished(std::string text, std::string reason = "stop", std::optional<int32_t> stop_token = 151645) {
  ChoiceResult r;
  r.text = std::move(text);
  r.finish_reason = std::move(reason);
  r.matched_stop_token = stop_token;
  return r;
}

json whole(const std::string& text, const OutputParsing& parsing, const std::string& reason = "stop") {
  ChoiceParser parser = counting_parser(parsing);
  return chat_choice(0, finished(text, reason), parser, nullptr);
}

TEST(ChatChoice, ReasoningAndToolCallOnly) {
  const json c = whole(kThinkAndCall, qwen_parsing());
  const json& m = c["message"];
  EXPECT_EQ(m["role"], "assistant");
  EXPECT_TRUE(m["content"].is_null()) << c.dump();
  EXPECT_EQ(m["reasoning_content"], "The user wants the weather.");
  ASSERT_EQ(m["tool_calls"].size(), 1u);
  const json& call = m["tool_calls"][0];
  EXPECT_EQ(call["id"], "call_0");
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_EQ(call["function"]["arguments"], "{\"city\": \"Paris\", \"unit\": \"c\"}");
  EXPECT_EQ(c["finish_reason"], "tool_calls");
  EXPECT_TRUE(c["matched_stop"].is_null()) << "the stop token is not what ended a tool-call reply";
  EXPECT_EQ(c["index"], 0);
  EXPECT_TRUE(c["logprobs"].is_null());
}

TEST(ChatChoice, TextBeforeSeveralCalls) {
  const json c = whole(kTextAndTwoCalls, qwen_parsing());
  EXPECT_EQ(c["message"]["content"], "Let me check both.");
  EXPECT_FALSE(c["message"].contains("reasoning_content"));
  ASSERT_EQ(c["message"]["tool_calls"].size(), 2u);
  EXPECT_EQ(c["message"]["tool_calls"][0]["id"], "call_0");
  EXPECT_EQ(c["message"]["tool_calls"][1]["id"], "call_1");
  EXPECT_EQ(c["message"]["tool_calls"][1]["function"]["name"], "get_time");
  EXPECT_EQ(c["message"]["tool_calls"][1]["function"]["arguments"], "{}");
  EXPECT_EQ(c["finish_reason"], "tool_calls");
}

TEST(ChatChoice, CutOffReplyKeepsLength) {
  const json c = whole(kThinkAndCall, qwen_parsing(), "length");
  EXPECT_EQ(c["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(c["finish_reason"], "length");
}

TEST(ChatChoice, WithoutToolParsingTagsStayContent) {
  const json c = whole(kThinkAndCall, qwen_parsing(/*tools=*/false));
  EXPECT_EQ(c["message"]["reasoning_content"], "The user wants the weather.");
  const std::string call = kThinkAndCall;
  EXPECT_EQ(c["message"]["content"], call.substr(call.find("<tool_call>")));
  EXPECT_FALSE(c["message"].contains("tool_calls"));
  EXPECT_EQ(c["finish_reason"], "stop");
  EXPECT_EQ(c["matched_stop"], 151645);

  const json raw = whole(kThinkAndCall, OutputParsing{});
  EXPECT_EQ(raw["message"]["content"], kThinkAndCall);
  EXPECT_FALSE(raw["message"].contains("reasoning_content"));
}

TEST(ChatChoice, EmptyReplyIsEmptyContentNotNull) {
  const json c = whole("", qwen_parsing());
  EXPECT_EQ(c["message"]["content"], "");
  EXPECT_EQ(c["finish_reason"], "stop");
}

TEST(ChatChoice, FinishReason) {
  EXPECT_EQ(chat_finish_reason("stop", true), "tool_calls");
  EXPECT_EQ(chat_finish_reason("stop", false), "stop");
  EXPECT_EQ(chat_finish_reason("length", true), "length");
  EXPECT_EQ(chat_finish_reason("abort", true), "abort");
}

// --- streaming ---

const json kBase = {{"id", "chatcmpl-x"}, {"object", "chat.completion.chunk"}, {"model", "m"}};

// Runs `pieces` as the text of successive updates, the last one finishing.
std::vector<json> stream(const std::vector<std::string>& pieces, const OutputParsing& parsing,
                         const std::string& reason = "stop") {
  ChatStreamChoice choice(kBase, 0, counting_parser(parsing));
  std::vector<json> out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    RequestUpdate u;
    u.text = pieces[i];
    if (i + 1 == pieces.size()) {
      u.finished = true;
      u.finish_reason = reason;
      u.matched_stop_token = 151645;
    }
    for (auto& c : choice.chunks(u, nullptr)) out.push_back(std::move(c));
  }
  return out;
}

// What the OpenAI client builds from the deltas: text fields concatenated,
// tool calls merged by index (id, type and name set once, arguments appended).
json accumulate(const std::vector<json>& chunks) {
  json m = {{"content", ""}, {"reasoning_content", ""}, {"tool_calls", json::array()}};
  for (const auto& chunk : chunks) {
    const json& delta = chunk["choices"][0]["delta"];
    for (const char* key : {"content", "reasoning_content"})
      if (delta.contains(key)) m[key] = m[key].get<std::string>() + delta[key].get<std::string>();
    if (!delta.contains("tool_calls")) continue;
    for (const auto& t : delta["tool_calls"]) {
      const size_t k = t["index"];
      if (k == m["tool_calls"].size()) m["tool_calls"].push_back({{"function", {{"arguments", ""}}}});
      json& call = m["tool_calls"].at(k);
      for (const char* key : {"id", "type"})
        if (t.contains(key)) call[key] = t[key];
      if (t["function"].contains("name")) call["function"]["name"] = t["function"]["name"];
      if (t["function"].contains("arguments"))
        call["function"]["arguments"] =
            call["function"]["arguments"].get<std::string>() + t["function"]["arguments"].get<std::string>();
    }
  }
  return m;
}

std::vector<std::vector<std::string>> splits(const std::string& text) {
  std::vector<std::vector<std::string>> out{{text}};
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  out.push_back(bytes);
  for (size_t i = 1; i < text.size(); i += 3) out.push_back({text.substr(0, i), text.substr(i)});
  return out;
}

void expect_stream_matches_whole(const std::string& text, const OutputParsing& parsing) {
  const json w = whole(text, parsing);
  const json& m = w["message"];
  for (const auto& pieces : splits(text)) {
    const auto chunks = stream(pieces, parsing);
    ASSERT_GE(chunks.size(), 2u);
    EXPECT_EQ(chunks.front()["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
    for (size_t i = 0; i < chunks.size(); ++i) {
      EXPECT_EQ(chunks[i]["id"], "chatcmpl-x");
      EXPECT_EQ(chunks[i]["choices"][0]["finish_reason"].is_null(), i + 1 < chunks.size());
    }
    EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], w["finish_reason"]);
    EXPECT_EQ(chunks.back()["choices"][0]["matched_stop"], w["matched_stop"]);
    const json acc = accumulate(chunks);
    const std::string where = std::to_string(pieces.size()) + " pieces";
    EXPECT_EQ(acc["content"], m["content"].is_null() ? json("") : m["content"]) << where;
    EXPECT_EQ(acc["reasoning_content"], m.value("reasoning_content", "")) << where;
    EXPECT_EQ(acc["tool_calls"], m.value("tool_calls", json::array())) << where;
  }
}

TEST(ChatStream, AgreesWithWholeResponseForEverySplit) {
  expect_stream_matches_whole(kThinkAndCall, qwen_parsing());
  expect_stream_matches_whole(kTextAndTwoCalls, qwen_parsing());
  expect_stream_matches_whole(kThinkAndCall, qwen_parsing(/*tools=*/false));
  expect_stream_matches_whole(kThinkAndCall, OutputParsing{});
  expect_stream_matches_whole("<tool_call>not json</tool_call> and text", qwen_parsing());
}

TEST(ChatStream, ToolCallDeltasAsOpenAiSendsThem) {
  const auto chunks = stream({kTextAndTwoCalls}, qwen_parsing());
  std::vector<json> calls;
  for (const auto& c : chunks)
    if (c["choices"][0]["delta"].contains("tool_calls")) calls.push_back(c["choices"][0]["delta"]["tool_calls"][0]);
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0], json::parse(R"({"index": 0, "id": "call_0", "type": "function",
                                      "function": {"name": "get_weather", "arguments": ""}})"));
  EXPECT_EQ(calls[1], json::parse(R"({"index": 0, "function": {"arguments": "{\"city\": \"Paris\"}"}})"));
  EXPECT_EQ(calls[2]["index"], 1);
  EXPECT_EQ(calls[2]["id"], "call_1");
  EXPECT_EQ(calls[3], json::parse(R"({"index": 1, "function": {"arguments": "{}"}})"));
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(chunks.back()["choices"][0]["delta"], json::object());
}

TEST(ChatStream, ReasoningStreamsBeforeTheReplyEnds) {
  ChatStreamChoice choice(kBase, 2, counting_parser(qwen_parsing()));
  RequestUpdate u;
  u.text = "<think>\nStep one";
  const auto chunks = choice.chunks(u, nullptr);
  ASSERT_EQ(chunks.size(), 2u);  // the role chunk, then the reasoning so far
  EXPECT_EQ(chunks[1]["choices"][0]["index"], 2);
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json({{"reasoning_content", "Step one"}}));
}

TEST(ChatStream, LogprobsRideOnTheFirstDeltaOrAnEmptyOne) {
  ChatStreamChoice choice(kBase, 0, counting_parser(qwen_parsing()));
  const json lp = {{"content", json::array({{{"token", "x"}}})}};
  RequestUpdate u;
  u.text = "Hello <tool";  // "<tool" may start a tag and is held back
  auto chunks = choice.chunks(u, lp);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json({{"content", "Hello"}}));
  EXPECT_EQ(chunks[1]["choices"][0]["logprobs"], lp);
  u.text = "x";
  chunks = choice.chunks(u, lp);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json({{"content", " <toolx"}}));
  u.text = "";
  chunks = choice.chunks(u, lp);  // nothing to show yet, but the token's logprobs still go out
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"], json({{"content", ""}}));
  EXPECT_EQ(chunks[0]["choices"][0]["logprobs"], lp);
}

TEST(ChatStream, ErrorUpdateIsAnErrorEvent) {
  ChatStreamChoice choice(kBase, 0, counting_parser(qwen_parsing()));
  RequestUpdate u;
  u.error = "out of memory";
  u.finished = true;
  const auto chunks = choice.chunks(u, nullptr);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0]["error"]["message"], "out of memory");
  EXPECT_EQ(chunks[0]["error"]["code"], 500);
}

}  // namespace
}  // namespace nativelm::server
