#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/pattern.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace nativelm {
namespace {

using Tokens = std::vector<std::string>;

class ByteLevel : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    std::string bytes;
    for (const auto& token : tokens) {
      std::string mapped;
      bool all_mapped = true;
      for (size_t pos = 0; pos < token.size() && all_mapped;) {
        auto b = byte_level::char_to_byte(utf8::next(token, pos));
        if (b) mapped += static_cast<char>(*b);
        all_mapped = b.has_value();
      }
      // A token from outside the byte alphabet (an added token) keeps its own bytes.
      bytes += all_mapped ? mapped : token;
    }
    return {utf8::repair(bytes)};
  }
};

class Metaspace : public Decoder {
 public:
  Metaspace(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      std::string out;
      const std::string& t = tokens[i];
      for (size_t pos = 0; pos < t.size();) {
        if (t.compare(pos, replacement_.size(), replacement_) == 0) {
          // tokenizers drops every replacement char of the first token, not just a leading one.
          if (!(i == 0 && strip_first_)) out += ' ';
          pos += replacement_.size();
        } else {
          size_t begin = pos;
          utf8::next(t, pos);
          out.append(t, begin, pos - begin);
        }
      }
      tokens[i] = std::move(out);
    }
    return tokens;
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class Replace : public Decoder {
 public:
  Replace(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (auto& t : tokens) t = pattern_.replace_all(t, content_);
    return tokens;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// The byte value of a "<0xNN>" token.
std::optional<unsigned char> byte_token(const std::string& t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t.back() != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

class ByteFallback : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    Tokens out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      // An invalid run becomes one U+FFFD per byte, not per invalid subsequence.
      if (utf8::find_invalid(pending) == std::string::npos) out.push_back(pending);
      else out.insert(out.end(), pending.size(), "\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : tokens) {
      if (auto b = byte_token(t)) {
        pending += static_cast<char>(*b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    return out;
  }
};

class Fuse : public Decoder {
 public:
  Tokens decode_chain(Tokens tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    return {all};
  }
};

class Strip : public Decoder {
 public:
  Strip(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (auto& t : tokens) t = strip(t);
    return tokens;
  }

 private:
  std::string strip(const std::string& t) const {
    std::vector<size_t> starts;  // byte offset of each character
    std::vector<char32_t> chars;
    for (size_t pos = 0; pos < t.size();) {
      starts.push_back(pos);
      chars.push_back(utf8::next(t, pos));
    }
    size_t begin = 0, end = chars.size();
    while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
    while (chars.size() - end < stop_ && end > begin && chars[end - 1] == content_) --end;
    size_t b = begin < chars.size() ? starts[begin] : t.size();
    size_t e = end < chars.size() ? starts[end] : t.size();
    return t.substr(b, e - b);
  }
  char32_t content_;
  size_t start_, stop_;
};

class Sequence : public Decoder {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  Tokens decode_chain(Tokens tokens) const override {
    for (const auto& step : steps_) tokens = step->decode_chain(std::move(tokens));
    return tokens;
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

char32_t single_char(const std::string& s, const char* what) {
  size_t pos = 0;
  if (s.empty()) fail("{} must be one character, got an empty string", what);
  char32_t c = utf8::next(s, pos);
  if (pos != s.size()) fail("{} must be one character, got '{}'", what, s);
  return c;
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& j) {
  if (j.is_null()) return nullptr;
  std::string type = j.at("type").get<std::string>();
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const auto& item : j.at("decoders")) {
      if (auto step = make_decoder(item)) steps.push_back(std::move(step));
    }
    return std::make_unique<Sequence>(std::move(steps));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevel>();
  if (type == "ByteFallback") return std::make_unique<ByteFallback>();
  if (type == "Fuse") return std::make_unique<Fuse>();
  if (type == "Replace") {
    return std::make_unique<Replace>(Pattern::from_json(j.at("pattern")), j.at("content").get<std::string>());
  }
  if (type == "Strip") {
    return std::make_unique<Strip>(single_char(j.at("content").get<std::string>(), "Strip decoder content"),
                                   j.value("start", size_t{0}), j.value("stop", size_t{0}));
  }
  if (type == "Metaspace") {
    bool strip_first = j.contains("prepend_scheme") ? j.at("prepend_scheme").get<std::string>() != "never"
                                                    : j.value("add_prefix_space", true);
    return std::make_unique<Metaspace>(j.value("replacement", std::string("\u2581")), strip_first);
  }
  fail("unsupported decoder type '{}' (supported: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, "
       "Metaspace)", type);
}

}  // namespace nativelm
