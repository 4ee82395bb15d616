#pragma once
// Published Qwen3 model shapes (config.json as on the Hub) and the list of
// tensors a Qwen3ForCausalLM checkpoint of that shape holds.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/dtype.h"

namespace nativelm::tools {

struct Qwen3Shape {
  std::string id;
  int64_t hidden, layers, heads, kv_heads, head_dim, intermediate, vocab;
  bool tied;
};

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm;  // RMSNorm weight: all ones rather than random
  int64_t elements() const;
};

// Ids: qwen3-0.6b, qwen3-8b, and qwen3-test (a tiny shape for the tool's own tests).
Qwen3Shape qwen3_shape(std::string_view id);
std::vector<TensorSpec> qwen3_tensors(const Qwen3Shape& shape);
nlohmann::json qwen3_config(const Qwen3Shape& shape, DType dtype);
nlohmann::json qwen3_generation_config();

}  // namespace nativelm::tools
