// The step between the fused q/k/v projection and attention, in one pass per
// token: per-head RMSNorm of q and k (Qwen3), rotary embedding, q to its own
// buffer and k/v straight into the paged KV pools.
#include "backend/cuda/rope.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarps = 4;

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
      norm_rope_head(in, q_norm, a.eps, rot, hd, [&](int j, float v) { out[j] = from_f<T>(v); });
    } else if (h < a.heads + a.kv_heads) {
      T* out = static_cast<T*>(a.k_pool) + slot * kv_dim + (h - a.heads) * hd;
      norm_rope_head(in, k_norm, a.eps, rot, hd, [&](int j, float v) { out[j] = from_f<T>(v); });
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
