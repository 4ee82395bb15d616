#pragma once
// A non-owning view of a dense, row-major tensor in some backend's memory.
// Weights point into the memory-mapped checkpoint (CPU) or device memory; the
// backend that made a tensor is the only one that may touch its data.
#include <array>
#include <cstdint>
#include <initializer_list>

#include "util/dtype.h"

namespace nativelm {

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  std::array<int64_t, 4> shape{0, 0, 0, 0};

  Tensor() = default;
  Tensor(void* d, DType t, std::initializer_list<int64_t> dims) : data(d), dtype(t) {
    for (int64_t x : dims) shape[ndim++] = x;
  }

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  int64_t bytes() const { return numel() * static_cast<int64_t>(dtype_size(dtype)); }
  bool empty() const { return data == nullptr; }

  // Rows [begin, begin+count) of the outermost dimension.
  Tensor rows(int64_t begin, int64_t count) const {
    Tensor t = *this;
    t.data = static_cast<char*>(data) + begin * (bytes() / shape[0]);
    t.shape[0] = count;
    return t;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
};

}  // namespace nativelm
