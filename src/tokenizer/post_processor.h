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
  // unknown types. `token_id` resolves a token string to its id (for Bert/Roberta).
  explicit PostProcessor(const nlohmann::json& j);

  std::vector<int32_t> apply(std::vector<int32_t> ids) const;

 private:
  void load(const nlohmann::json& j);
  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace nativelm
