#pragma once
// A compiled PCRE2 pattern in UTF + Unicode-property mode, standing in for the
// Oniguruma regexes that Hugging Face tokenizers run.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nativelm {

class Regex {
 public:
  // Throws nativelm::Error naming the pattern when it does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Byte ranges [begin, end) of successive non-overlapping matches in `text`
  // (valid UTF-8), scanning left to right as Oniguruma's find_iter does.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nativelm
