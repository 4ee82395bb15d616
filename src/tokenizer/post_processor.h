#pragma once
// Hugging Face post-processors: what encode(text, add_special_tokens=true)
// wraps around the model's ids (e.g. Llama's BOS).
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <vector>

namespace nativelm {

class PostProcessor {
 public:
  // JSON null yields a processor that adds nothing. Throws nativelm::Error for
  // unknown types.
  explicit PostProcessor(const nlohmann::json& j);

  std::vector<int32_t> apply(std::vector<int32_t> ids) const;

 private:
  // Adds one processor; later processors wrap the output of earlier ones.
  void load(const nlohmann::json& j);
  void wrap(const std::vector<int32_t>& before, const std::vector<int32_t>& after);
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace nativelm
