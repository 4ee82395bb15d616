#include "chat/jinja_lexer.h"

#include <cstring>

#include "chat/py_string.h"
#include "util/error.h"

namespace nativelm::chat::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// jinja2 reads the whole source with universal newlines and drops one final "\n".
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t open = find_open(pos_);
      std::string text = src_.substr(pos_, open - pos_);
      if (open == src_.size()) {
        emit_text(text);
        pos_ = open;
        break;
      }
      char kind = src_[open + 1];
      char modifier = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (modifier == '-') {
        size_t e = text.size();
        while (e > 0 && is_ws(text[e - 1])) --e;
        text.resize(e);
      } else if (modifier != '+' && kind != '{') {
        lstrip(text, line_starting);
      }
      emit_text(text);
      count_lines(pos_, open);
      pos_ = open + 2 + (modifier == '-' || modifier == '+' ? 1 : 0);
      if (kind == '#') line_starting = comment();
      else if (kind == '%' && is_raw()) line_starting = raw();
      else line_starting = tag(kind);
    }
    tokens_.push_back({Token::Type::End, "", line_});
    return std::move(tokens_);
  }

 private:
  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;

  [[noreturn]] void error(const std::string& message) {
    fail("chat template syntax error at line {}: {}", line_, message);
  }

  size_t find_open(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#'))
        return i;
    }
    return src_.size();
  }

  void count_lines(size_t from, size_t to) {
    for (size_t i = from; i < to && i < src_.size(); ++i) line_ += src_[i] == '\n';
  }

  // lstrip_blocks: spaces between a line start and a block/comment tag vanish.
  static void lstrip(std::string& text, bool line_starting) {
    size_t nl = text.rfind('\n');
    size_t start = nl == std::string::npos ? 0 : nl + 1;
    if (start == 0 && !line_starting) return;
    for (size_t i = start; i < text.size(); ++i)
      if (!is_ws(text[i])) return;
    text.resize(start);
  }

  void emit_text(const std::string& text) {
    if (!text.empty()) tokens_.push_back({Token::Type::Text, text, line_});
  }

  // After a closing tag: `-` eats all following whitespace, trim_blocks eats one
  // newline. Returns whether what was consumed ended a line (for lstrip_blocks).
  bool after_close(bool dash, bool trim) {
    size_t start = pos_;
    if (dash) {
      while (pos_ < src_.size() && is_ws(src_[pos_])) ++pos_;
    } else if (trim && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    count_lines(start, pos_);
    if (pos_ > start) return src_[pos_ - 1] == '\n';
    return false;
  }

  bool comment() {
    size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) error("unterminated comment");
    bool dash = end > pos_ && src_[end - 1] == '-';
    count_lines(pos_, end);
    pos_ = end + 2;
    return after_close(dash, true);
  }

  bool is_raw() const {
    size_t p = pos_;
    while (p < src_.size() && is_ws(src_[p])) ++p;
    return src_.compare(p, 3, "raw") == 0 && (p + 3 >= src_.size() || !is_name_char(src_[p + 3]));
  }

  bool raw() {
    size_t close = src_.find("%}", pos_);
    if (close == std::string::npos) error("unterminated raw tag");
    bool dash = close > pos_ && src_[close - 1] == '-';
    count_lines(pos_, close);
    pos_ = close + 2;
    after_close(dash, true);
    // Find {% endraw %} allowing whitespace and modifiers inside the tag.
    for (size_t p = src_.find("{%", pos_); p != std::string::npos; p = src_.find("{%", p + 2)) {
      size_t q = p + 2;
      bool strip_before = q < src_.size() && src_[q] == '-';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
      while (q < src_.size() && is_ws(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && is_ws(src_[q])) ++q;
      bool end_dash = q < src_.size() && src_[q] == '-';
      if (end_dash) ++q;
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string body = src_.substr(pos_, p - pos_);
      if (strip_before) {
        while (!body.empty() && is_ws(body.back())) body.pop_back();
      } else {
        lstrip(body, false);
      }
      emit_text(body);
      count_lines(pos_, q);
      pos_ = q + 2;
      return after_close(end_dash, true);
    }
    error("missing {% endraw %}");
  }

  bool tag(char kind) {
    const char* close = kind == '{' ? "}}" : "%}";
    tokens_.push_back({kind == '{' ? Token::Type::VarBegin : Token::Type::BlockBegin, "", line_});
    while (true) {
      while (pos_ < src_.size() && is_ws(src_[pos_])) {
        line_ += src_[pos_] == '\n';
        ++pos_;
      }
      if (pos_ >= src_.size()) error(std::string("missing '") + close + "'");
      bool dash = src_[pos_] == '-' && src_.compare(pos_ + 1, 2, close) == 0;
      if (dash || src_.compare(pos_, 2, close) == 0) {
        pos_ += dash ? 3 : 2;
        tokens_.push_back({kind == '{' ? Token::Type::VarEnd : Token::Type::BlockEnd, "", line_});
        return after_close(dash, kind == '%');
      }
      expression_token();
    }
  }

  void expression_token() {
    char c = src_[pos_];
    if (is_name_start(c)) {
      size_t s = pos_;
      while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
      tokens_.push_back({Token::Type::Name, src_.substr(s, pos_ - s), line_});
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      number();
    } else if (c == '\'' || c == '"') {
      string_literal(c);
    } else {
      static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%",
                                  "~", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".",
                                  ":", "|", ";"};
      for (const char* op : ops) {
        size_t n = std::strlen(op);
        if (src_.compare(pos_, n, op) == 0) {
          tokens_.push_back({Token::Type::Op, op, line_});
          pos_ += n;
          return;
        }
      }
      error(std::string("unexpected character '") + c + "'");
    }
  }

  void number() {
    size_t s = pos_;
    bool is_float = false;
    auto digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) ++pos_;
    };
    digits();
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      ++pos_;
      digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        pos_ = p;
        digits();
      }
    }
    std::string text;
    for (size_t i = s; i < pos_; ++i)
      if (src_[i] != '_') text += src_[i];
    tokens_.push_back({is_float ? Token::Type::Float : Token::Type::Int, text, line_});
  }

  // Python's "unicode-escape" decoding, which jinja2 applies to string literals.
  void string_literal(char quote) {
    size_t start_line = line_;
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) {
        line_ = static_cast<int>(start_line);
        error("unterminated string literal");
      }
      char c = src_[pos_++];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= src_.size()) continue;
      escape(out);
    }
    tokens_.push_back({Token::Type::String, out, line_});
  }

  void escape(std::string& out) {
    char e = src_[pos_++];
    switch (e) {
      case 'n': out += '\n'; return;
      case 't': out += '\t'; return;
      case 'r': out += '\r'; return;
      case '\\': out += '\\'; return;
      case '\'': out += '\''; return;
      case '"': out += '"'; return;
      case 'a': out += '\a'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'v': out += '\v'; return;
      case '\n': ++line_; return;  // line continuation
      case 'x': hex_escape(out, 2); return;
      case 'u': hex_escape(out, 4); return;
      case 'U': hex_escape(out, 8); return;
      default: break;
    }
    if (e >= '0' && e <= '7') {
      unsigned v = static_cast<unsigned>(e - '0');
      for (int i = 0; i < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++i)
        v = v * 8 + static_cast<unsigned>(src_[pos_++] - '0');
      py::append_utf8(out, v);
      return;
    }
    out += '\\';  // unknown escapes stay as written, as in Python
    out += e;
  }

  void hex_escape(std::string& out, int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i) {
      int h = pos_ < src_.size() ? hex_value(src_[pos_]) : -1;
      if (h < 0) error("truncated \\x, \\u or \\U escape in string literal");
      v = v * 16 + static_cast<uint32_t>(h);
      ++pos_;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) error("invalid unicode escape in string literal");
    py::append_utf8(out, v);
  }
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
  return Lexer(normalize_newlines(source)).run();
}

}  // namespace nativelm::chat::jinja
