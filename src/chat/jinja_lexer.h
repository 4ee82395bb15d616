#pragma once
// Splits a template into text and tag tokens, applying whitespace control the
// way transformers configures jinja2: trim_blocks, lstrip_blocks, `-` and `+`
// modifiers, and dropping one trailing newline (keep_trailing_newline=False).
#include <string>
#include <string_view>
#include <vector>

namespace nativelm::chat::jinja {

struct Token {
  enum class Type {
    Text, VarBegin, VarEnd, BlockBegin, BlockEnd,
    Name, String, Int, Float, Op, End
  };
  Type type;
  std::string text;  // Text/Name/Op spelling; String holds the unescaped value
  int line;
};

// Throws nativelm::Error ("... at line N") on malformed input.
std::vector<Token> tokenize(std::string_view source);

}  // namespace nativelm::chat::jinja
