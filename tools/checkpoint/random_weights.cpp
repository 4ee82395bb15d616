#include "checkpoint/random_weights.h"

#include <cmath>
#include <cstring>

namespace nativelm::tools {

namespace {

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

template <typename Gen>
void store(std::span<std::byte> out, DType dtype, Gen&& gen) {
  const size_t n = out.size() / dtype_size(dtype);
  std::byte* p = out.data();
  for (size_t i = 0; i < n; ++i) {
    const float v = gen();
    if (dtype == DType::F32) {
      std::memcpy(p + 4 * i, &v, 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
      std::memcpy(p + 2 * i, &h, 2);
    }
  }
}

}  // namespace

RandomWeights::RandomWeights(uint64_t seed, std::string_view tensor_name) {
  uint64_t x = seed ^ fnv1a(tensor_name);
  for (uint64_t& s : s_) s = splitmix64(x);
}

// xoshiro256** (Blackman & Vigna): fast, and plenty for benchmark weights.
uint64_t RandomWeights::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

// Sum of four 16-bit uniforms (Irwin-Hall), standardised: one generator call
// per value instead of Box-Muller's log/sqrt/sin, which matters for the 16 GB
// of an 8B checkpoint. Tails stop at +-3.46 sigma; fine for benchmark weights.
float RandomWeights::approx_standard_normal() {
  const uint64_t r = next();
  const uint32_t sum = static_cast<uint32_t>(r & 0xffff) + ((r >> 16) & 0xffff) +
                       ((r >> 32) & 0xffff) + (r >> 48);
  constexpr float kMean = 2.0f * 65535.0f;
  const float kScale = std::sqrt(3.0f) / 65535.0f;
  return (static_cast<float>(sum) - kMean) * kScale;
}

void RandomWeights::fill_normal(std::span<std::byte> out, DType dtype, float stddev) {
  store(out, dtype, [&] { return approx_standard_normal() * stddev; });
}

void fill_constant(std::span<std::byte> out, DType dtype, float value) {
  store(out, dtype, [&] { return value; });
}

}  // namespace nativelm::tools
