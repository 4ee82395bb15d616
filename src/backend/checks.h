#pragma once
// Argument checks shared by every backend's ops: a wrong shape from a caller
// becomes an Error naming the op and the argument, never a wild access.
#include <cstdint>

#include "backend/tensor.h"
#include "util/error.h"

namespace nativelm {

inline void check_present(const Tensor& t, const char* op, const char* what) {
  if (t.empty()) fail("{}: {} has no data", op, what);
}

// A present 2-D tensor of any dtype.
inline void check_2d(const Tensor& t, const char* op, const char* what) {
  check_present(t, op, what);
  if (t.ndim != 2) fail("{}: {} must be 2-D, got {}-D", op, what, t.ndim);
}

inline void check_dims(const Tensor& t, int64_t rows, int64_t cols, const char* op, const char* what) {
  check_2d(t, op, what);
  if (t.dim(0) != rows || t.dim(1) != cols)
    fail("{}: {} is [{}, {}], expected [{}, {}]", op, what, t.dim(0), t.dim(1), rows, cols);
}

}  // namespace nativelm
