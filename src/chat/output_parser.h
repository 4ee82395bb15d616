#pragma once
// The whole streamed-output pipeline for one completion: reasoning is split off
// first, then tool calls are taken out of what remains.
#include <memory>
#include <optional>

#include "chat/reasoning_parser.h"
#include "chat/tool_call_parser.h"

namespace nativelm::chat {

class OutputParser {
 public:
  // reasoning == nullopt leaves <think> tags in the content.
  OutputParser(std::optional<ReasoningParser::Options> reasoning, ToolCallFormat tools,
               std::function<std::string()> make_id = {});

  OutputDelta feed(std::string_view chunk);
  OutputDelta finish();

 private:
  std::optional<ReasoningParser> reasoning_;
  ToolCallParser tools_;
};

}  // namespace nativelm::chat
