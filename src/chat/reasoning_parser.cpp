#include "chat/reasoning_parser.h"

#include "util/error.h"

namespace nativelm::chat {
namespace {

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

}  // namespace

ReasoningParser::ReasoningParser(Options options)
    : options_(std::move(options)),
      state_(options_.starts_in_reasoning ? State::Reasoning : State::Start) {
  if (options_.open.empty() || options_.close.empty()) fail("reasoning tags must not be empty");
}

void ReasoningParser::emit_reasoning(std::string_view text, bool last, OutputDelta& out) {
  if (!reasoning_started_) {
    while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
    if (text.empty()) return;
    reasoning_started_ = true;
  }
  size_t body = text.size();
  while (body > 0 && is_space(text[body - 1])) --body;
  if (body > 0) {
    out.reasoning += pending_space_;
    out.reasoning.append(text.substr(0, body));
    pending_space_.clear();
  }
  pending_space_.append(text.substr(body));
  if (last) pending_space_.clear();
}

// Processes as much of buf_ as can be decided now; returns whether to go on.
bool ReasoningParser::step(OutputDelta& out) {
  switch (state_) {
    case State::Start: {
      size_t first = 0;
      while (first < buf_.size() && is_space(buf_[first])) ++first;
      std::string_view rest = std::string_view(buf_).substr(first);
      if (rest.empty()) return false;
      if (rest.starts_with(options_.open)) {
        buf_.erase(0, first + options_.open.size());
        state_ = State::Reasoning;
        return true;
      }
      if (std::string_view(options_.open).starts_with(rest)) return false;  // maybe the tag
      state_ = State::Content;
      return true;
    }
    case State::Reasoning: {
      size_t at = buf_.find(options_.close);
      if (at != std::string::npos) {
        emit_reasoning(std::string_view(buf_).substr(0, at), true, out);
        buf_.erase(0, at + options_.close.size());
        state_ = State::AfterReasoning;
        return true;
      }
      size_t hold = partial_tag_suffix(buf_, options_.close);
      emit_reasoning(std::string_view(buf_).substr(0, buf_.size() - hold), false, out);
      buf_.erase(0, buf_.size() - hold);
      return false;
    }
    case State::AfterReasoning: {
      size_t first = 0;
      while (first < buf_.size() && is_space(buf_[first])) ++first;
      buf_.erase(0, first);
      if (buf_.empty()) return false;
      state_ = State::Content;
      return true;
    }
    case State::Content:
      out.content += buf_;
      buf_.clear();
      return false;
  }
  return false;
}

OutputDelta ReasoningParser::feed(std::string_view chunk) {
  OutputDelta out;
  buf_.append(chunk);
  while (step(out)) {
  }
  return out;
}

OutputDelta ReasoningParser::finish() {
  OutputDelta out;
  if (state_ == State::Start) {
    out.content = std::move(buf_);  // whitespace or a lone prefix of the open tag
  } else if (state_ == State::Reasoning) {
    emit_reasoning(buf_, true, out);
  } else if (state_ == State::Content) {
    out.content = std::move(buf_);
  }
  buf_.clear();
  return out;
}

}  // namespace nativelm::chat
