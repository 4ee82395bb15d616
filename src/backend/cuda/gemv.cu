// Matrix-vector products for small batches (decode): one warp per output
// row streams that weight row once with 16-byte loads and applies it to all
// n input rows, so the weights are read exactly once per step, at close to
// memory bandwidth. Larger batches go to cuBLASLt (gemm.cpp).
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

template <class T, class O, int N, bool kVector>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                O* __restrict__ out, int m, int k) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarpsPerBlock + warp;
  if (row >= m) return;
  const T* wr = w + static_cast<int64_t>(row) * k;
  float acc[N];
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = 0.0f;
  if constexpr (kVector) {
    constexpr int V = 16 / sizeof(T);
#pragma unroll 4
    for (int j = lane * V; j < k; j += 32 * V) {
      const uint4 wv = __ldg(reinterpret_cast<const uint4*>(wr + j));
      const T* wt = reinterpret_cast<const T*>(&wv);
      float wf[V];
#pragma unroll
      for (int e = 0; e < V; ++e) wf[e] = to_f(wt[e]);
#pragma unroll
      for (int n = 0; n < N; ++n) {
        const uint4 xv = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(n) * k + j);
        const T* xt = reinterpret_cast<const T*>(&xv);
#pragma unroll
        for (int e = 0; e < V; ++e) acc[n] += wf[e] * to_f(xt[e]);
      }
    }
  } else {
    for (int j = lane; j < k; j += 32) {
      const float wf = to_f(wr[j]);
#pragma unroll
      for (int n = 0; n < N; ++n) acc[n] += wf * to_f(x[static_cast<int64_t>(n) * k + j]);
    }
  }
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = warp_sum(acc[n]);
  if (lane == 0) {
    const float b = bias ? to_f(bias[row]) : 0.0f;
#pragma unroll
    for (int n = 0; n < N; ++n) out[static_cast<int64_t>(n) * m + row] = from_f<O>(acc[n] + b);
  }
}

template <class T, class O, int N>
void launch_n(const void* x, const void* w, const void* bias, int m, int k, void* out, cudaStream_t s) {
  const bool vec = (k * sizeof(T)) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const int blocks = (m + kWarpsPerBlock - 1) / kWarpsPerBlock;
  auto xt = static_cast<const T*>(x), wt = static_cast<const T*>(w), bt = static_cast<const T*>(bias);
  if (vec) {
    gemv_kernel<T, O, N, true><<<blocks, kWarpsPerBlock * 32, 0, s>>>(xt, wt, bt, static_cast<O*>(out), m, k);
  } else {
    gemv_kernel<T, O, N, false><<<blocks, kWarpsPerBlock * 32, 0, s>>>(xt, wt, bt, static_cast<O*>(out), m, k);
  }
}

template <class T, class O>
void launch(const void* x, const void* w, const void* bias, int n, int m, int k, void* out, cudaStream_t s) {
  switch (n) {
    case 1: launch_n<T, O, 1>(x, w, bias, m, k, out, s); break;
    case 2: launch_n<T, O, 2>(x, w, bias, m, k, out, s); break;
    case 3: launch_n<T, O, 3>(x, w, bias, m, k, out, s); break;
    case 4: launch_n<T, O, 4>(x, w, bias, m, k, out, s); break;
    case 5: launch_n<T, O, 5>(x, w, bias, m, k, out, s); break;
    case 6: launch_n<T, O, 6>(x, w, bias, m, k, out, s); break;
    case 7: launch_n<T, O, 7>(x, w, bias, m, k, out, s); break;
    default: launch_n<T, O, 8>(x, w, bias, m, k, out, s); break;
  }
}

}  // namespace

void gemv(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* out,
          Ty out_t, cudaStream_t s) {
  if (n == 0 || m == 0) return;
  if (out_t == Ty::F32) {
    NATIVELM_DISPATCH(t, launch<T, float>(x, w, bias, n, m, k, out, s));
  } else {
    NATIVELM_DISPATCH(t, launch<T, T>(x, w, bias, n, m, k, out, s));
  }
}

}  // namespace nativelm::cuda
