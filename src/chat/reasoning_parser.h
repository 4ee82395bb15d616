#pragma once
// Separates `<think>...</think>` from the answer in streamed model output, as
// Qwen3-style models write it. Tags may arrive split across any chunks.
// Whitespace around the reasoning and before the answer is dropped.
#include <string>
#include <string_view>

#include "chat/output_delta.h"

namespace nativelm::chat {

class ReasoningParser {
 public:
  struct Options {
    std::string open = "<think>";
    std::string close = "</think>";
    // The prompt already opened the reasoning block (the template ends in "<think>\n").
    bool starts_in_reasoning = false;
  };

  ReasoningParser() : ReasoningParser(Options{}) {}
  explicit ReasoningParser(Options options);

  OutputDelta feed(std::string_view chunk);
  // Flushes what was held back; an unterminated reasoning block stays reasoning.
  OutputDelta finish();

 private:
  enum class State { Start, Reasoning, AfterReasoning, Content };
  void emit_reasoning(std::string_view text, bool last, OutputDelta& out);
  bool step(OutputDelta& out);

  Options options_;
  State state_;
  std::string buf_;
  std::string pending_space_;  // trailing whitespace of reasoning, emitted only if more follows
  bool reasoning_started_ = false;
};

}  // namespace nativelm::chat
