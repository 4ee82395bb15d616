#include "tokenizer/byte_level.h"

#include <unordered_map>

#include "tokenizer/utf8.h"

namespace nativelm::byte_level {
namespace {

struct Tables {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<char32_t, unsigned char> char_to_byte;
};

const Tables& tables() {
  static const Tables t = [] {
    Tables out;
    // Printable Latin-1 bytes map to themselves; the rest are shifted past 255
    // in byte order, which is what the trained vocabularies expect.
    auto printable = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; };
    char32_t next_free = 256;
    for (int b = 0; b < 256; ++b) {
      char32_t c = printable(b) ? static_cast<char32_t>(b) : next_free++;
      utf8::append(out.byte_to_utf8[b], c);
      out.char_to_byte[c] = static_cast<unsigned char>(b);
    }
    return out;
  }();
  return t;
}

}  // namespace

std::string encode(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.byte_to_utf8[static_cast<unsigned char>(c)];
  return out;
}

std::optional<unsigned char> char_to_byte(char32_t c) {
  const auto& t = tables();
  auto it = t.char_to_byte.find(c);
  if (it == t.char_to_byte.end()) return std::nullopt;
  return it->second;
}

}  // namespace nativelm::byte_level
