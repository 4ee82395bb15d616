#include "tokenizer/tokenizer.h"

#include <cstddef>

namespace nativelm {
namespace {

// Hugging Face marks unfinished UTF-8 with U+FFFD; such text may still change.
bool may_be_unfinished(const std::string& text) { return text.ends_with("\xEF\xBF\xBD"); }

// The part of `text` after `prefix`. Only malformed byte sequences make a
// longer decode rewrite text that was already complete; that text is out
// already, so skip its length and resume at a character boundary.
std::string after_prefix(const std::string& text, const std::string& prefix) {
  size_t cut = std::min(prefix.size(), text.size());
  if (!text.starts_with(prefix)) {
    while (cut < text.size() && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) ++cut;
  }
  return text.substr(cut);
}

}  // namespace

DecodeStream::DecodeStream(const Tokenizer& tokenizer, bool skip_special_tokens, std::span<const int32_t>)
    : tokenizer_(&tokenizer), skip_special_(skip_special_tokens) {}

// Text is produced by diffing decode(window) against decode(window minus the
// new ids). Both decodes start at the same token, so decoder effects tied to
// the start of a decode (SentencePiece's stripped leading space) cancel out,
// and the window only moves past ids once their text is complete.
std::string DecodeStream::step(int32_t id) {
  window_.push_back(id);
  std::string text;
  try {
    text = tokenizer_->decode(window_, skip_special_);
  } catch (...) {
    window_.pop_back();  // leave the stream usable after an unknown id
    throw;
  }
  if (text.size() <= prefix_.size() || may_be_unfinished(text)) return {};
  std::string fresh = after_prefix(text, prefix_);
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(read_));
  prefix_ = tokenizer_->decode(window_, skip_special_);
  read_ = window_.size();
  return fresh;
}

std::string DecodeStream::flush() {
  std::string text = tokenizer_->decode(window_, skip_special_);
  std::string rest = text.size() > prefix_.size() ? after_prefix(text, prefix_) : std::string();
  window_.clear();
  prefix_.clear();
  read_ = 0;
  return rest;
}

}  // namespace nativelm
