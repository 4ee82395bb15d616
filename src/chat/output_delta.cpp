#include "chat/output_delta.h"

namespace nativelm::chat {

nlohmann::ordered_json ToolCall::to_openai() const {
  return {{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", arguments}}}};
}

void OutputDelta::append(OutputDelta other) {
  content += other.content;
  reasoning += other.reasoning;
  for (auto& c : other.tool_calls) tool_calls.push_back(std::move(c));
}

size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  size_t longest = std::min(text.size(), tag.size() - 1);
  for (size_t n = longest; n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

}  // namespace nativelm::chat
