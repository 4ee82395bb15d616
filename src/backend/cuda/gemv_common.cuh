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

// One output from its dot products (gate, and up for kNormSwiglu), rounded
// as the separate projection, silu_mul and add kernels would round; `old`
// is the value it is added to for kAdd.
template <class T, int kMode>
__device__ __forceinline__ float gemv_value(float gate, float up, const T* bias, int row, int m, float old) {
  gate += bias ? to_f(bias[row]) : 0.0f;
  if constexpr (kMode == kNormSwiglu) {
    const float g = round_to<T>(gate), u = round_to<T>(up + (bias ? to_f(bias[m + row]) : 0.0f));
    return round_to<T>(g / (1.0f + __expf(-g))) * u;
  } else if constexpr (kMode == kAdd) {
    return round_to<T>(gate) + old;
  } else {
    return gate;
  }
}

template <class T, class O, int kMode>
__device__ __forceinline__ void gemv_store(float gate, float up, const T* bias, int row, int m, O* o) {
  *o = from_f<O>(gemv_value<T, kMode>(gate, up, bias, row, m, kMode == kAdd ? to_f(*o) : 0.0f));
}

// Copies into shared memory that do not hold up the thread (cp.async).
__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  const auto s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// The dot product of eight T in each of a and b.
template <class T>
__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const T* at = reinterpret_cast<const T*>(&a);
  const T* bt = reinterpret_cast<const T*>(&b);
  float s = 0.0f;
#pragma unroll
  for (int e = 0; e < 8; ++e) s += to_f(at[e]) * to_f(bt[e]);
  return s;
}

// One warp's part of a weight row wr (and, for kDual, of its up row wu)
// against each input row of xs [rows, k]: 16-byte pieces part * 32 + lane,
// stepping wpr * 32; acc / acc_u come back summed over the warp.
template <class T, int N, bool kDual>
__device__ __forceinline__ void row_dots(const T* wr, const T* wu, const T* xs, int k, int part, int wpr, int rows,
                                         float (&acc)[N], float (&acc_u)[N]) {
  const int lane = threadIdx.x % 32, pieces = k / 8;
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = acc_u[n] = 0.0f;
  for (int c = part * 32 + lane; c < pieces; c += wpr * 32) {
    const uint4 wv = reinterpret_cast<const uint4*>(wr)[c];
    uint4 uv;
    if constexpr (kDual) uv = reinterpret_cast<const uint4*>(wu)[c];
#pragma unroll
    for (int n = 0; n < N; ++n) {
      if (n >= rows) break;
      const uint4 xv = reinterpret_cast<const uint4*>(xs + n * k)[c];
      acc[n] += dot8<T>(wv, xv);
      if constexpr (kDual) acc_u[n] += dot8<T>(uv, xv);
    }
  }
#pragma unroll
  for (int n = 0; n < N; ++n) {
    acc[n] = warp_sum(acc[n]);
    if constexpr (kDual) acc_u[n] = warp_sum(acc_u[n]);
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
