#pragma once
// Hugging Face normalizers: text rewrites applied to each stretch of input
// between added tokens, before pre-tokenization.
#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>

namespace nativelm {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `lead` counts the leading bytes of `text` that stem from the first
  // character of the original text; each stage updates it. Once it is 0 the
  // text no longer begins at the original start, which Metaspace's "first"
  // scheme checks (Hugging Face tracks this through its offset alignments).
  virtual std::string normalize(std::string text, size_t& lead) const = 0;
  std::string normalize(std::string text) const {
    size_t lead = 0;
    return normalize(std::move(text), lead);
  }
};

// nullptr for a JSON null (no normalizer). Throws nativelm::Error for unknown types.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);

}  // namespace nativelm
