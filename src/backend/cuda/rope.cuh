#pragma once
// Per-head RMSNorm (Qwen3's q_norm/k_norm) and rotary embedding of one q or
// k head, a warp per head: used by the prepare kernel and by the decode
// attention kernel that does the prepare itself.
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

constexpr int kRopePairs = 4;  // rotary pairs per lane with precomputed angles (head_dim <= 256)

// The lane's rotary cos/sin: step inputs only, so computed before a kernel
// waits for the kernel before it.
struct Rotary {
  float cs[kRopePairs], sn[kRopePairs];
};

__device__ __forceinline__ Rotary rotary(float pos, const float* inv_freq, int head_dim) {
  Rotary r;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < kRopePairs; ++i) {
    const int j = lane + 32 * i;
    if (j < head_dim / 2) sincosf(pos * inv_freq[j], &r.sn[i], &r.cs[i]);
  }
  return r;
}

// Lanes take rotary pairs (j, j + half); store(j, v) gets element j of the
// result before its rounding to T. The norm's output is rounded to T twice,
// as transformers does.
template <class T, class Store>
__device__ __forceinline__ void norm_rope_head(const T* src, const T* norm, float eps, const Rotary& rot,
                                               int head_dim, Store store) {
  const int lane = threadIdx.x % 32, half = head_dim / 2;
  float rstd = 1.0f;
  if (norm) {
    float ss = 0.0f;
    for (int j = lane; j < head_dim; j += 32) {
      const float v = to_f(src[j]);
      ss += v * v;
    }
    rstd = rsqrtf(warp_sum(ss) / static_cast<float>(head_dim) + eps);
  }
#pragma unroll
  for (int i = 0; i < kRopePairs; ++i) {
    const int j = lane + 32 * i;
    if (j >= half) break;
    float x1 = to_f(src[j]), x2 = to_f(src[j + half]);
    if (norm) {
      x1 = round_to<T>(to_f(norm[j]) * round_to<T>(x1 * rstd));
      x2 = round_to<T>(to_f(norm[j + half]) * round_to<T>(x2 * rstd));
    }
    store(j, x1 * rot.cs[i] - x2 * rot.sn[i]);
    store(j + half, x2 * rot.cs[i] + x1 * rot.sn[i]);
  }
}

}  // namespace nativelm::cuda
