#pragma once
// UTF-8 helpers shared by the tokenizer stages. Hugging Face works on Rust
// strings, so the byte-for-byte details here (validation, lossy repair) follow
// Rust's rules rather than any looser convention.
#include <cstdint>
#include <string>
#include <string_view>

namespace nativelm::utf8 {

// Byte length of the character starting with `lead`, assuming valid UTF-8.
inline size_t char_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the character at s[pos] (valid UTF-8 assumed) and advances pos.
char32_t next(std::string_view s, size_t& pos);

void append(std::string& out, char32_t cp);

// Offset of the first invalid byte, or npos when `s` is valid UTF-8.
size_t find_invalid(std::string_view s);

// Replaces each maximal invalid subsequence by U+FFFD, like Rust's
// String::from_utf8_lossy (which Hugging Face's decoders use).
std::string repair(std::string_view bytes);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t c);

// Rust's char::is_numeric, for the Digits pre-tokenizer.
bool is_numeric(char32_t c);

// The Unicode \w of Rust's regex crate (Alphabetic, marks, decimal digits,
// connector punctuation, joiners), which decides single_word boundaries.
bool is_word_char(char32_t c);

}  // namespace nativelm::utf8
