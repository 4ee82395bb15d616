#pragma once
// Seeded, fast pseudo-random weights for benchmark checkpoints. Each tensor's
// stream depends only on (seed, tensor name), so files are reproducible and
// independent of write order.
#include <cstdint>
#include <span>
#include <string_view>

#include "util/dtype.h"

namespace nativelm::tools {

class RandomWeights {
 public:
  RandomWeights(uint64_t seed, std::string_view tensor_name);
  // Fills `out` (raw little-endian elements of `dtype`) with ~N(0, stddev).
  void fill_normal(std::span<std::byte> out, DType dtype, float stddev);

 private:
  uint64_t next();
  float approx_standard_normal();
  uint64_t s_[4];
};

// Fills `out` with the constant `value` in `dtype`.
void fill_constant(std::span<std::byte> out, DType dtype, float value);

}  // namespace nativelm::tools
