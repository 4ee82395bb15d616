#include "chat/output_parser.h"

namespace nativelm::chat {

OutputParser::OutputParser(std::optional<ReasoningParser::Options> reasoning, ToolCallFormat tools,
                           std::function<std::string()> make_id)
    : tools_(tools, std::move(make_id)) {
  if (reasoning) reasoning_.emplace(std::move(*reasoning));
}

OutputDelta OutputParser::feed(std::string_view chunk) {
  if (!reasoning_) return tools_.feed(chunk);
  OutputDelta r = reasoning_->feed(chunk);
  OutputDelta out = tools_.feed(r.content);
  out.reasoning = std::move(r.reasoning);
  return out;
}

OutputDelta OutputParser::finish() {
  OutputDelta out;
  if (reasoning_) {
    OutputDelta r = reasoning_->finish();
    out = tools_.feed(r.content);
    out.reasoning = std::move(r.reasoning);
  }
  out.append(tools_.finish());
  return out;
}

}  // namespace nativelm::chat
