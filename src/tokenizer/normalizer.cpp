#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {
namespace {

class UnicodeForm : public Normalizer {
 public:
  explicit UnicodeForm(int options) : options_(options) {}
  std::string normalize(std::string text, size_t& lead) const override {
    std::string result = map(text);
    if (lead > 0) {
      // The leading character's own image, unless composition merged it with
      // its neighbour; the merged character still stems from it.
      std::string image = map(text.substr(0, lead));
      if (result.starts_with(image)) lead = image.size();
      else lead = result.empty() ? 0 : utf8::char_len(static_cast<unsigned char>(result[0]));
    }
    return result;
  }

 private:
  std::string map(const std::string& text) const {
    if (text.empty()) return text;
    utf8proc_uint8_t* out = nullptr;
    auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                          static_cast<utf8proc_ssize_t>(text.size()), &out,
                          static_cast<utf8proc_option_t>(options_ | UTF8PROC_STABLE));
    if (n < 0) fail("Unicode normalization failed: {}", utf8proc_errmsg(n));
    std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
    std::free(out);
    return result;
  }
  int options_;
};

class Prepend : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  // Hugging Face cannot attach a prefix to an empty string, so it leaves it empty.
  std::string normalize(std::string text, size_t& lead) const override {
    if (text.empty()) return text;
    if (lead > 0) lead += prefix_.size();  // the prefix is aligned with the first character
    return prefix_ + text;
  }

 private:
  std::string prefix_;
};

class Replace : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string text, size_t& lead) const override {
    auto matches = pattern_.find_all(text);
    // Replacements inherit the alignment of what they replace.
    size_t new_lead = 0, prev = 0;
    for (auto [begin, end] : matches) {
      if (begin >= lead) break;
      new_lead += begin - prev + content_.size();
      prev = end;
    }
    if (prev < lead) new_lead += lead - prev;
    lead = new_lead;
    return pattern_.replace_all(text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Strip : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string text, size_t& lead) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      for (size_t pos = 0; pos < text.size();) {
        if (!utf8::is_whitespace(utf8::next(text, pos))) break;
        begin = pos;
      }
    }
    if (right_) {
      size_t last_non_space = begin;
      for (size_t pos = begin; pos < end;) {
        if (!utf8::is_whitespace(utf8::next(text, pos))) last_non_space = pos;
      }
      end = last_non_space;
    }
    lead = lead > begin ? lead - begin : 0;
    return text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class Sequence : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string text, size_t& lead) const override {
    for (const auto& step : steps_) text = step->normalize(std::move(text), lead);
    return text;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const auto& item : j.at("normalizers")) {
      if (auto step = make_normalizer(item)) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "NFC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC") return std::make_unique<UnicodeForm>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
  if (type == "NFKD") return std::make_unique<UnicodeForm>(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  if (type == "Prepend") return std::make_unique<Prepend>(j.at("prepend").get<std::string>());
  if (type == "Replace") {
    return std::make_unique<Replace>(Pattern::from_json(j.at("pattern")), j.at("content").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(j.value("strip_left", true), j.value("strip_right", true));
  }
  fail("unsupported normalizer type '{}' (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Strip)",
       type);
}

}  // namespace nativelm
