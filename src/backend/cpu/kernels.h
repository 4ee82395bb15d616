#pragma once
// The hot loops of the CPU backend, one table per instruction-set level.
// kernels_<isa>.cpp files are compiled with their own -m flags, so they use
// only raw pointers and their own helpers: an inline or template function
// shared with other files could be emitted with those flags and picked by the
// linker for code that runs on older processors.
#include <cstdint>

#include "backend/cpu/isa.h"
#include "util/dtype.h"

namespace nativelm::cpu {

// linear() uses the GEMV kernel up to this many rows, the GEMM above.
constexpr int64_t kGemvMaxRows = 4;

struct Kernels {
  Isa isa;
  // out[r * ldo + m] = dot(x[r * k, ...], w[m * k, ...]) for r < rows
  // (rows <= kGemvMaxRows) and m in [m0, m1). w is [*, k] in dtype wt.
  void (*gemv)(const float* x, int64_t rows, const void* w, DType wt, int64_t k, int64_t m0,
               int64_t m1, float* out, int64_t ldo);
  // The same product for any number of rows, over columns [m0, m1) of out;
  // m0 must be a multiple of gemm_panel. scratch holds gemm_scratch_floats(n).
  void (*gemm)(const float* x, int64_t n, const void* w, DType wt, int64_t k, int64_t m0,
               int64_t m1, float* out, int64_t ldo, float* scratch);
  int64_t gemm_panel;
  int64_t (*gemm_scratch_floats)(int64_t n);
  // sum_i a[i] * b[i], b in dtype bt.
  float (*dot)(const float* a, const void* b, DType bt, int64_t n);
  // y[i] += alpha * x[i], x in dtype xt.
  void (*axpy)(float alpha, const void* x, DType xt, float* y, int64_t n);
  // s[i] = exp(s[i] - max) for i < n; returns their sum (softmax numerators).
  float (*exp_sum)(float* s, int64_t n, float max);
  // out[i] = silu(gate[i]) * up[i]; out may alias gate or up.
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
};

const Kernels& kernels_for(Isa isa);

}  // namespace nativelm::cpu
