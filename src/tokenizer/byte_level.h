#pragma once
// GPT-2's reversible byte <-> printable character map used by byte-level BPE:
// every byte becomes one visible Unicode character so that the BPE vocabulary
// never contains raw control bytes or spaces.
#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace nativelm::byte_level {

// The text with each byte replaced by its mapped character (UTF-8 encoded).
std::string encode(std::string_view bytes);

// The byte a mapped character stands for, or nullopt for a foreign character.
std::optional<unsigned char> char_to_byte(char32_t c);

}  // namespace nativelm::byte_level
