#pragma once
#include <gtest/gtest.h>

#include <string>
#include <tuple>
// Helpers shared by the CPU backend tests: host buffers of any dtype viewed
// as Tensors, seeded random data, and the ISA levels this machine can run.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/isa.h"
#include "backend/tensor.h"
#include "util/dtype.h"

namespace nativelm::test {

inline std::vector<cpu::Isa> runnable_isas() {
  std::vector<cpu::Isa> out;
  for (cpu::Isa isa : {cpu::Isa::Scalar, cpu::Isa::Avx2, cpu::Isa::Avx512}) {
    if (cpu::isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

inline std::string isa_param_name(const testing::TestParamInfo<cpu::Isa>& info) {
  return std::string(cpu::isa_name(info.param));
}

// A host buffer holding values of one dtype; values() are the exact f32
// values it stores (after rounding to that dtype).
class Buffer {
 public:
  Buffer(DType dtype, std::vector<int64_t> shape) : dtype_(dtype), shape_(std::move(shape)) {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    bytes_.assign(static_cast<size_t>(n) * dtype_size(dtype), 0);
    n_ = n;
  }
  void fill_random(std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
    std::uniform_real_distribution<float> dist(lo, hi);
    for (int64_t i = 0; i < n_; ++i) set(i, dist(rng));
  }
  void set(int64_t i, float v) {
    switch (dtype_) {
      case DType::F32:
        reinterpret_cast<float*>(bytes_.data())[i] = v;
        break;
      case DType::BF16:
        reinterpret_cast<uint16_t*>(bytes_.data())[i] = f32_to_bf16(v);
        break;
      case DType::F16:
        reinterpret_cast<uint16_t*>(bytes_.data())[i] = f32_to_f16(v);
        break;
    }
  }
  float get(int64_t i) const {
    switch (dtype_) {
      case DType::F32:
        return reinterpret_cast<const float*>(bytes_.data())[i];
      case DType::BF16:
        return bf16_to_f32(reinterpret_cast<const uint16_t*>(bytes_.data())[i]);
      case DType::F16:
        return f16_to_f32(reinterpret_cast<const uint16_t*>(bytes_.data())[i]);
    }
    return 0;
  }
  std::vector<float> values() const {
    std::vector<float> v(static_cast<size_t>(n_));
    for (int64_t i = 0; i < n_; ++i) v[i] = get(i);
    return v;
  }
  Tensor tensor() {
    Tensor t(bytes_.data(), dtype_, {});
    t.ndim = static_cast<int>(shape_.size());
    for (int i = 0; i < t.ndim; ++i) t.shape[i] = shape_[i];
    return t;
  }
  int64_t size() const { return n_; }

 private:
  DType dtype_;
  std::vector<int64_t> shape_;
  std::vector<unsigned char> bytes_;
  int64_t n_ = 0;
};

inline Tensor view(std::vector<float>& v, int64_t rows, int64_t cols) {
  return Tensor(v.data(), DType::F32, {rows, cols});
}

inline std::vector<float> random_floats(std::mt19937& rng, int64_t n, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// Tests run for every runnable ISA level and every weight / pool dtype.
using IsaDtype = std::tuple<cpu::Isa, DType>;

inline auto all_isa_dtypes() {
  return testing::Combine(testing::ValuesIn(runnable_isas()), testing::Values(DType::F32, DType::BF16, DType::F16));
}

inline std::string isa_dtype_name(const testing::TestParamInfo<IsaDtype>& info) {
  return std::string(cpu::isa_name(std::get<0>(info.param))) + "_" + std::string(dtype_name(std::get<1>(info.param)));
}

}  // namespace nativelm::test
