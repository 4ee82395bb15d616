#pragma once
// What a streaming output parser hands back for each chunk of generated text:
// visible content, reasoning (`reasoning_content`) and completed tool calls.
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace nativelm::chat {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // a JSON text, as OpenAI's API carries it

  // {"id", "type": "function", "function": {"name", "arguments"}}
  nlohmann::ordered_json to_openai() const;
};

struct OutputDelta {
  std::string content;
  std::string reasoning;
  std::vector<ToolCall> tool_calls;

  bool empty() const { return content.empty() && reasoning.empty() && tool_calls.empty(); }
  void append(OutputDelta other);
};

// Length of the longest suffix of `text` that is a proper prefix of `tag`: bytes
// that must wait for the next chunk because they may be the start of the tag.
size_t partial_tag_suffix(std::string_view text, std::string_view tag);

}  // namespace nativelm::chat
