#pragma once
// Shared by the two decode GEMVs (gemv.cu, gemv_prefetch.cu): what the kernel
// does around its dot products, and the arguments of one product.
#include <cuda_runtime.h>

#include "backend/cuda/kernels.h"

namespace nativelm::cuda {

enum GemvMode : int {
  kPlain = 0,
  kNorm = 1,        // x is RMS-normalised on the fly (norm weights, per-row rstd)
  kNormSwiglu = 2,  // kNorm, and the gate/up pair of rows gives silu(gate) * up
  kAdd = 3,         // the result is added to out (the residual stream)
};

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
