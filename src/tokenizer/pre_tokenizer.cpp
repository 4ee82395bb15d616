#include "tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <functional>
#include <optional>

#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {
namespace {

using Ranges = std::vector<std::pair<size_t, size_t>>;

// Refines every piece with `cut`, which returns byte ranges of the piece text.
void refine(std::vector<Piece>& pieces, const std::function<Ranges(const std::string&)>& cut) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (auto& piece : pieces) {
    for (auto [begin, end] : cut(piece.text)) {
      if (end > begin) out.push_back({piece.text.substr(begin, end - begin), piece.at_start && begin == 0});
    }
  }
  pieces = std::move(out);
}

std::vector<Segment> segments_from_matches(const Ranges& matches, size_t size, bool invert) {
  std::vector<Segment> segments;
  size_t prev = 0;
  for (auto [begin, end] : matches) {
    if (begin > prev) segments.push_back({prev, begin, invert});
    segments.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev < size) segments.push_back({prev, size, invert});
  return segments;
}

SplitBehavior parse_behavior(const std::string& name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail("unknown Split behavior '{}'", name);
}

class Split : public PreTokenizer {
 public:
  Split(Pattern pattern, SplitBehavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<Piece>& pieces) const override {
    refine(pieces, [&](const std::string& text) {
      auto segments = segments_from_matches(pattern_.find_all(text), text.size(), invert_);
      return apply_split_behavior(segments, behavior_);
    });
  }

 private:
  Pattern pattern_;
  SplitBehavior behavior_;
  bool invert_;
};

// GPT-2's own split, used when a ByteLevel pre-tokenizer has use_regex set.
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_.emplace(kGpt2Pattern);
  }
  void apply(std::vector<Piece>& pieces) const override {
    for (auto& piece : pieces) {
      if (add_prefix_space_ && !piece.text.empty() && piece.text[0] != ' ') piece.text = " " + piece.text;
    }
    if (regex_) {
      refine(pieces, [&](const std::string& text) {
        auto segments = segments_from_matches(regex_->find_all(text), text.size(), false);
        return apply_split_behavior(segments, SplitBehavior::Isolated);
      });
    }
    for (auto& piece : pieces) piece.text = byte_level::encode(piece.text);
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { Always, First, Never };

class Metaspace : public PreTokenizer {
 public:
  Metaspace(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (auto& piece : pieces) {
      std::string text;
      for (char c : piece.text) c == ' ' ? text += replacement_ : text += c;
      bool wants_prefix = scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && piece.at_start);
      if (wants_prefix && !text.empty() && !text.starts_with(replacement_)) text = replacement_ + text;
      piece.text = std::move(text);
    }
    if (!split_) return;
    refine(pieces, [&](const std::string& text) {
      Ranges matches;
      for (size_t pos = text.find(replacement_); pos != std::string::npos; pos = text.find(replacement_, pos + 1)) {
        matches.emplace_back(pos, pos + replacement_.size());
      }
      return apply_split_behavior(segments_from_matches(matches, text.size(), false), SplitBehavior::MergedWithNext);
    });
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
};

class Digits : public PreTokenizer {
 public:
  explicit Digits(bool individual) : individual_(individual) {}
  void apply(std::vector<Piece>& pieces) const override {
    refine(pieces, [&](const std::string& text) {
      std::vector<Segment> segments;
      for (size_t pos = 0; pos < text.size();) {
        size_t begin = pos;
        bool digit = utf8::is_numeric(utf8::next(text, pos));
        bool extend = !segments.empty() && segments.back().is_match == digit && segments.back().end == begin &&
                      (!digit || !individual_);
        if (extend) segments.back().end = pos;
        else segments.push_back({begin, pos, digit});
      }
      return apply_split_behavior(segments, individual_ ? SplitBehavior::Isolated : SplitBehavior::Contiguous);
    });
  }

 private:
  bool individual_;
};

class Sequence : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<Piece>& pieces) const override {
    for (const auto& step : steps_) step->apply(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

PrependScheme parse_prepend_scheme(const nlohmann::json& j) {
  if (!j.contains("prepend_scheme")) {  // files older than prepend_scheme
    return j.value("add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
  }
  std::string s = j.at("prepend_scheme").get<std::string>();
  if (s == "always") return PrependScheme::Always;
  if (s == "first") return PrependScheme::First;
  if (s == "never") return PrependScheme::Never;
  fail("unknown Metaspace prepend_scheme '{}'", s);
}

}  // namespace

std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<Segment>& segments,
                                                            SplitBehavior behavior) {
  Ranges out;
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& s : segments) {
        if (!s.is_match) out.emplace_back(s.begin, s.end);
      }
      break;
    case SplitBehavior::Isolated:
      for (const auto& s : segments) out.emplace_back(s.begin, s.end);
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const auto& s : segments) {
        if (s.is_match && !previous_match && !out.empty()) out.back().second = s.end;
        else out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = segments.rbegin(); it != segments.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) out.back().first = it->begin;
        else out.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::Contiguous:
      for (size_t i = 0; i < segments.size(); ++i) {
        const auto& s = segments[i];
        if (i > 0 && s.is_match == previous_match) out.back().second = s.end;
        else out.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
  }
  return out;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& item : j.at("pretokenizers")) {
      if (auto step = make_pre_tokenizer(item)) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "Split") {
    return std::make_unique<Split>(Pattern::from_json(j.at("pattern")),
                                   parse_behavior(j.at("behavior").get<std::string>()), j.value("invert", false));
  }
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevel>(j.value("add_prefix_space", true), j.value("use_regex", true));
  }
  if (type == "Metaspace") {
    return std::make_unique<Metaspace>(j.value("replacement", std::string("\u2581")), parse_prepend_scheme(j),
                                       j.value("split", true));
  }
  if (type == "Digits") return std::make_unique<Digits>(j.value("individual_digits", false));
  fail("unsupported pre_tokenizer type '{}' (supported: Sequence, Split, ByteLevel, Metaspace, Digits)", type);
}

}  // namespace nativelm
