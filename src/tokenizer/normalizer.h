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
  virtual std::string normalize(std::string text) const = 0;
};

// nullptr for a JSON null (no normalizer). Throws nativelm::Error for unknown types.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j);

}  // namespace nativelm
