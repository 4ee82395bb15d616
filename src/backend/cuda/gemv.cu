// Matrix-vector products for small batches (decode): one warp per output
// row streams that weight row once with 16-byte loads and applies it to all
// n input rows, so the weights are read exactly once per step, at close to
// memory bandwidth. Larger batches go to cuBLASLt (gemm.cpp).
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// A block of 8 warps serves 8 / WPR rows; the WPR warps of a row take
// interleaved 16-byte chunks of it, so short matrices (down_proj has only
// 1024 rows) still keep enough loads in flight to reach full bandwidth.
// The input row n, elements [j, j + V): x itself, or with kSilu the SwiGLU
// activation silu(gate) * up of a fused gate_up row [n, 2k], rounded as the
// separate silu_mul kernel rounds it.
template <class T, bool kSilu, int V>
__device__ __forceinline__ void input_chunk(const T* x, int64_t n, int k, int j, float (&out)[V]) {
  if constexpr (kSilu) {
    const T* row = x + n * 2 * k;
    if constexpr (V * sizeof(T) == 16) {
      const uint4 gv = *reinterpret_cast<const uint4*>(row + j), uv = *reinterpret_cast<const uint4*>(row + k + j);
      const T* g = reinterpret_cast<const T*>(&gv);
      const T* u = reinterpret_cast<const T*>(&uv);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float gf = to_f(g[e]);
        out[e] = round_to<T>(round_to<T>(gf / (1.0f + __expf(-gf))) * to_f(u[e]));
      }
    } else {
      const float gf = to_f(row[j]);
      out[0] = round_to<T>(round_to<T>(gf / (1.0f + __expf(-gf))) * to_f(row[k + j]));
    }
  } else {
    if constexpr (V * sizeof(T) == 16) {
      const uint4 xv = *reinterpret_cast<const uint4*>(x + n * k + j);
      const T* xt = reinterpret_cast<const T*>(&xv);
#pragma unroll
      for (int e = 0; e < V; ++e) out[e] = to_f(xt[e]);
    } else {
      out[0] = to_f(x[n * k + j]);
    }
  }
}

template <class T, class O, int N, int WPR, bool kVector, bool kSilu>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                O* __restrict__ out, int m, int k, int rows) {
  constexpr int kRows = kWarpsPerBlock / WPR;
  __shared__ float partial[kWarpsPerBlock][N];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kRows + warp / WPR, part = warp % WPR;
  float acc[N];
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = 0.0f;
  if (row < m) {
    const T* wr = w + static_cast<int64_t>(row) * k;
    if constexpr (kVector) {
      constexpr int V = 16 / sizeof(T), kBatch = 4;
      const int step = WPR * 32 * V;
      int j = (part * 32 + lane) * V;
      // kBatch weight loads issued before any is used.
      for (; j + (kBatch - 1) * step < k; j += kBatch * step) {
        uint4 wv[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b) wv[b] = __ldg(reinterpret_cast<const uint4*>(wr + j + b * step));
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          const T* wt = reinterpret_cast<const T*>(&wv[b]);
#pragma unroll
          for (int n = 0; n < N; ++n) {
            if (n >= rows) break;
            float xf[V];
            input_chunk<T, kSilu, V>(x, n, k, j + b * step, xf);
#pragma unroll
            for (int e = 0; e < V; ++e) acc[n] += to_f(wt[e]) * xf[e];
          }
        }
      }
      for (; j < k; j += step) {
        const uint4 wv = __ldg(reinterpret_cast<const uint4*>(wr + j));
        const T* wt = reinterpret_cast<const T*>(&wv);
#pragma unroll
        for (int n = 0; n < N; ++n) {
          if (n >= rows) break;
          float xf[V];
          input_chunk<T, kSilu, V>(x, n, k, j, xf);
#pragma unroll
          for (int e = 0; e < V; ++e) acc[n] += to_f(wt[e]) * xf[e];
        }
      }
    } else {
      for (int j = part * 32 + lane; j < k; j += WPR * 32) {
        const float wf = to_f(wr[j]);
#pragma unroll
        for (int n = 0; n < N; ++n) {
          if (n >= rows) break;
          float xf[1];
          input_chunk<T, kSilu, 1>(x, n, k, j, xf);
          acc[n] += wf * xf[0];
        }
      }
    }
  }
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = warp_sum(acc[n]);
  if constexpr (WPR > 1) {
    if (lane == 0)
#pragma unroll
      for (int n = 0; n < N; ++n) partial[warp][n] = acc[n];
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int n = 0; n < N; ++n) {
      acc[n] = 0.0f;
      for (int p = 0; p < WPR; ++p) acc[n] += partial[warp + p][n];
    }
  }
  if (lane == 0 && row < m) {
    const float b = bias ? to_f(bias[row]) : 0.0f;
#pragma unroll
    for (int n = 0; n < N; ++n)
      if (n < rows) out[static_cast<int64_t>(n) * m + row] = from_f<O>(acc[n] + b);
  }
}

template <class T, class O, int N, int WPR, bool kSilu>
void launch_wpr(const void* x, const void* w, const void* bias, int rows, int m, int k, void* out, bool vec,
                cudaStream_t s) {
  const int blocks = (m + kWarpsPerBlock / WPR - 1) / (kWarpsPerBlock / WPR);
  auto xt = static_cast<const T*>(x), wt = static_cast<const T*>(w), bt = static_cast<const T*>(bias);
  if constexpr (WPR == 1) {
    if (!vec) {
      gemv_kernel<T, O, N, 1, false, kSilu><<<blocks, kWarpsPerBlock * 32, 0, s>>>(xt, wt, bt, static_cast<O*>(out), m,
                                                                                 k, rows);
      return;
    }
  }
  gemv_kernel<T, O, N, WPR, true, kSilu><<<blocks, kWarpsPerBlock * 32, 0, s>>>(xt, wt, bt, static_cast<O*>(out), m, k,
                                                                              rows);
}

// Warps per row: enough warps over the whole matrix to cover the GPU many
// times (about 6000 on an H100), but no more than the row has 16-byte
// chunks. Rows that cannot take 16-byte loads use one warp each.
template <class T, class O, int N, bool kSilu>
void launch_n(const void* x, const void* w, const void* bias, int rows, int m, int k, void* out, cudaStream_t s) {
  const bool vec = (k * sizeof(T)) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const int chunks = k / (32 * static_cast<int>(16 / sizeof(T)));
  int wpr = 1;
  while (vec && wpr < 8 && static_cast<int64_t>(m) * wpr < 6144 && chunks >= 2 * wpr) wpr *= 2;
  switch (wpr) {
    case 1: launch_wpr<T, O, N, 1, kSilu>(x, w, bias, rows, m, k, out, vec, s); break;
    case 2: launch_wpr<T, O, N, 2, kSilu>(x, w, bias, rows, m, k, out, vec, s); break;
    case 4: launch_wpr<T, O, N, 4, kSilu>(x, w, bias, rows, m, k, out, vec, s); break;
    default: launch_wpr<T, O, N, 8, kSilu>(x, w, bias, rows, m, k, out, vec, s); break;
  }
}

// Row counts round up to 1, 2, 4 or 8 compiled variants.
template <class T, class O, bool kSilu = false>
void launch(const void* x, const void* w, const void* bias, int n, int m, int k, void* out, cudaStream_t s) {
  if (n <= 1) {
    launch_n<T, O, 1, kSilu>(x, w, bias, n, m, k, out, s);
  } else if (n <= 2) {
    launch_n<T, O, 2, kSilu>(x, w, bias, n, m, k, out, s);
  } else if (n <= 4) {
    launch_n<T, O, 4, kSilu>(x, w, bias, n, m, k, out, s);
  } else {
    launch_n<T, O, 8, kSilu>(x, w, bias, n, m, k, out, s);
  }
}

}  // namespace

void gemv_silu(Ty t, const void* gate_up, const void* w, const void* bias, int n, int m, int k, void* out,
               cudaStream_t s) {
  if (n == 0 || m == 0) return;
  NATIVELM_DISPATCH(t, (launch<T, T, true>(gate_up, w, bias, n, m, k, out, s)));
}

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
