#pragma once
// The `pattern` of Split pre-tokenizers and Replace normalizers/decoders:
// either {"String": literal} or {"Regex": oniguruma-syntax}.
#include <nlohmann/json_fwd.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/regex.h"

namespace nativelm {

class Pattern {
 public:
  static Pattern from_json(const nlohmann::json& j);

  // Byte ranges of successive non-overlapping matches, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

  std::string replace_all(std::string_view text, std::string_view with) const;

 private:
  std::string literal_;
  std::optional<Regex> regex_;
};

}  // namespace nativelm
