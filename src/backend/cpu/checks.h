#pragma once
// Argument checks of the CPU ops: the shared ones (backend/checks.h), plus
// the CPU's f32 activations.
#include <cstdint>

#include "backend/checks.h"

namespace nativelm::cpu {

using nativelm::check_present;

// An f32 activation of shape [rows, cols].
inline void check_matrix(const Tensor& t, const char* op, const char* what) {
  check_2d(t, op, what);
  if (t.dtype != DType::F32) fail("{}: {} must be float32, got {}", op, what, dtype_name(t.dtype));
}

inline void check_shape(const Tensor& t, int64_t rows, int64_t cols, const char* op,
                        const char* what) {
  check_matrix(t, op, what);
  check_dims(t, rows, cols, op, what);
}

inline void check_vector(const Tensor& t, int64_t n, const char* op, const char* what) {
  check_present(t, op, what);
  if (t.numel() != n) fail("{}: {} has {} elements, expected {}", op, what, t.numel(), n);
}

// Element i of a weight of any dtype, as f32.
inline float load_as_f32(const Tensor& t, int64_t i) {
  switch (t.dtype) {
    case DType::F32:
      return t.as<const float>()[i];
    case DType::BF16:
      return bf16_to_f32(t.as<const uint16_t>()[i]);
    case DType::F16:
      return f16_to_f32(t.as<const uint16_t>()[i]);
  }
  return 0.0f;
}

}  // namespace nativelm::cpu
