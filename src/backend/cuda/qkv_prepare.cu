// The step between the fused q/k/v projection and attention, in one pass per
// token: per-head RMSNorm of q and k (Qwen3), rotary embedding, q to its own
// buffer and k/v straight into the paged KV pools.
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarps = 4;

constexpr int kPairs = 4;  // rotary pairs per lane with precomputed angles (head_dim <= 256)

// The lane's rotary cos/sin, computed before the kernel waits for its input.
struct Rotary {
  float cs[kPairs], sn[kPairs];
};

__device__ __forceinline__ Rotary rotary(float pos, const float* inv_freq, int head_dim) {
  Rotary r;
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int i = 0; i < kPairs; ++i) {
    const int j = lane + 32 * i;
    if (j < head_dim / 2) sincosf(pos * inv_freq[j], &r.sn[i], &r.cs[i]);
  }
  return r;
}

// One warp per head; lanes take rotary pairs (j, j + half).
template <class T>
__device__ void norm_rope_head(const T* src, const T* norm, float eps, const Rotary& rot, int head_dim, T* dst) {
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
  for (int i = 0; i < kPairs; ++i) {
    const int j = lane + 32 * i;
    if (j >= half) break;
    float x1 = to_f(src[j]), x2 = to_f(src[j + half]);
    if (norm) {
      x1 = round_to<T>(to_f(norm[j]) * round_to<T>(x1 * rstd));
      x2 = round_to<T>(to_f(norm[j + half]) * round_to<T>(x2 * rstd));
    }
    dst[j] = from_f<T>(x1 * rot.cs[i] - x2 * rot.sn[i]);
    dst[j + half] = from_f<T>(x2 * rot.cs[i] + x1 * rot.sn[i]);
  }
}

template <class T>
__global__ void qkv_prepare_kernel(QkvArgs a) {
  const int row = blockIdx.x, hd = a.head_dim;
  const int width = (a.heads + 2 * a.kv_heads) * hd, kv_dim = a.kv_heads * hd;
  const T* src = static_cast<const T*>(a.qkv) + static_cast<int64_t>(row) * width;
  // Positions, slots and the rotary angles are step inputs: ready before the wait.
  const int64_t slot = a.slots[row];
  const Rotary rot = rotary(static_cast<float>(a.positions[row]), a.inv_freq, hd);
  grid_dependency_wait();
  grid_dependency_trigger();
  const T* q_norm = static_cast<const T*>(a.q_norm);
  const T* k_norm = static_cast<const T*>(a.k_norm);
  // blockIdx.y picks a group of kWarps heads: decode rows are few, and one
  // block per row alone would leave the GPU idle.
  const int h = blockIdx.y * kWarps + threadIdx.x / 32;
  if (h < a.heads + 2 * a.kv_heads) {
    const T* in = src + h * hd;
    if (h < a.heads) {
      T* out = static_cast<T*>(a.q_out) + static_cast<int64_t>(row) * a.heads * hd + h * hd;
      norm_rope_head(in, q_norm, a.eps, rot, hd, out);
    } else if (h < a.heads + a.kv_heads) {
      T* out = static_cast<T*>(a.k_pool) + slot * kv_dim + (h - a.heads) * hd;
      norm_rope_head(in, k_norm, a.eps, rot, hd, out);
    } else {
      T* out = static_cast<T*>(a.v_pool) + slot * kv_dim + (h - a.heads - a.kv_heads) * hd;
      for (int j = threadIdx.x % 32; j < hd; j += 32) out[j] = in[j];
    }
  }
}

}  // namespace

void qkv_prepare(Ty t, const QkvArgs& a, cudaStream_t s) {
  if (a.n == 0) return;
  const dim3 grid(a.n, (a.heads + 2 * a.kv_heads + kWarps - 1) / kWarps);
  NATIVELM_DISPATCH(t, launch_pdl(qkv_prepare_kernel<T>, grid, 32 * kWarps, 0, s, a));
}

}  // namespace nativelm::cuda
