#pragma once
// Shared by the two decode GEMVs (gemv.cu, gemv_prefetch.cu): what the kernel
// does around its dot products, the arguments of one product, and the input
// and output rounding both must apply alike.
#include <cuda_runtime.h>

#include "backend/cuda/common.cuh"
#include "backend/cuda/kernels.h"

namespace nativelm::cuda {

enum GemvMode : int {
  kPlain = 0,
  kNorm = 1,        // x is RMS-normalised on the fly (norm weights, per-row rstd)
  kNormSwiglu = 2,  // kNorm, and the gate/up pair of rows gives silu(gate) * up
  kAdd = 3,         // the result is added to out (the residual stream)
};

__host__ __device__ constexpr bool has_norm(int mode) { return mode == kNorm || mode == kNormSwiglu; }

// The input element as the model sees it: x, or with a norm exactly what
// the RMSNorm kernel would have written (rounded to T twice, as transformers).
template <class T, int kMode>
__device__ __forceinline__ float gemv_input(float x, float nw, float rstd) {
  if constexpr (has_norm(kMode)) return round_to<T>(nw * round_to<T>(x * rstd));
  return x;
}

// Writes one output from its dot products (gate, and up for kNormSwiglu),
// rounded as the separate projection, silu_mul and add kernels would round.
template <class T, class O, int kMode>
__device__ __forceinline__ void gemv_store(float gate, float up, const T* bias, int row, int m, O* o) {
  gate += bias ? to_f(bias[row]) : 0.0f;
  if constexpr (kMode == kNormSwiglu) {
    const float g = round_to<T>(gate), u = round_to<T>(up + (bias ? to_f(bias[m + row]) : 0.0f));
    *o = from_f<O>(round_to<T>(g / (1.0f + __expf(-g))) * u);
  } else if constexpr (kMode == kAdd) {
    *o = from_f<O>(round_to<T>(gate) + to_f(*o));
  } else {
    *o = from_f<O>(gate);
  }
}

struct GemvArgs {
  const void *x, *nw;
  float eps;
  const void *w, *bias;
  int rows, m, k;
  void* out;
};

// Launches the prefetching GEMV (16-bit weights, out_t == t or f32 logits)
// when a block's share of w fits its shared memory; false when not, and
// nothing was launched.
bool gemv_prefetch(Ty t, Ty out_t, GemvMode mode, const GemvArgs& g, cudaStream_t s);

}  // namespace nativelm::cuda
