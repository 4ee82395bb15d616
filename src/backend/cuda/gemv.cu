// Matrix-vector products for small batches (decode): a weight row is streamed
// once with 16-byte loads and applied to all n input rows, so each step
// reads the weights exactly once, close to memory bandwidth. Larger batches
// go to cuBLASLt (gemm.cpp).
//
// kDual is the MLP's fused gate/up projection: output row i reads weight
// rows i (gate) and m + i (up) and writes silu(gate) * up, so the [n, 2m]
// intermediate never exists.
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

template <class T, int N, int V>
__device__ __forceinline__ void fma_chunk(const uint4& wv, const T* x, int rows, int k, int j, float (&acc)[N]) {
  const T* wt = reinterpret_cast<const T*>(&wv);
#pragma unroll
  for (int n = 0; n < N; ++n) {
    if (n >= rows) break;
    const uint4 xv = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(n) * k + j);
    const T* xt = reinterpret_cast<const T*>(&xv);
#pragma unroll
    for (int e = 0; e < V; ++e) acc[n] += to_f(wt[e]) * to_f(xt[e]);
  }
}

// Dot products of one weight row (and its up row with kDual) with the rows
// of x, over this warp's share of k.
template <class T, int N, int WPR, bool kVector, bool kDual>
__device__ __forceinline__ void row_dots(const T* x, const T* wr, const T* wu, int rows, int k, int part,
                                         float (&acc)[N], float (&acc_u)[N]) {
  const int lane = threadIdx.x % 32;
  if constexpr (kVector) {
    constexpr int V = 16 / sizeof(T), kBatch = kDual ? 2 : 4;
    const int step = WPR * 32 * V;
    int j = (part * 32 + lane) * V;
    // kBatch chunks of each weight row are loaded before any is used.
    for (; j + (kBatch - 1) * step < k; j += kBatch * step) {
      uint4 wv[kBatch], uv[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        wv[b] = __ldg(reinterpret_cast<const uint4*>(wr + j + b * step));
        if constexpr (kDual) uv[b] = __ldg(reinterpret_cast<const uint4*>(wu + j + b * step));
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        fma_chunk<T, N, V>(wv[b], x, rows, k, j + b * step, acc);
        if constexpr (kDual) fma_chunk<T, N, V>(uv[b], x, rows, k, j + b * step, acc_u);
      }
    }
    for (; j < k; j += step) {
      fma_chunk<T, N, V>(__ldg(reinterpret_cast<const uint4*>(wr + j)), x, rows, k, j, acc);
      if constexpr (kDual) fma_chunk<T, N, V>(__ldg(reinterpret_cast<const uint4*>(wu + j)), x, rows, k, j, acc_u);
    }
  } else {
    for (int j = part * 32 + lane; j < k; j += WPR * 32) {
      const float wf = to_f(wr[j]), uf = kDual ? to_f(wu[j]) : 0.0f;
#pragma unroll
      for (int n = 0; n < N; ++n) {
        if (n >= rows) break;
        const float xf = to_f(x[static_cast<int64_t>(n) * k + j]);
        acc[n] += wf * xf;
        if constexpr (kDual) acc_u[n] += uf * xf;
      }
    }
  }
}

// Sums the WPR warps' partial dot products of each row into the part-0 warp.
template <int N, int WPR>
__device__ __forceinline__ bool combine_parts(float (&acc)[N], float (*partial)[N]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = warp_sum(acc[n]);
  if constexpr (WPR > 1) {
    if (lane == 0)
#pragma unroll
      for (int n = 0; n < N; ++n) partial[warp][n] = acc[n];
    __syncthreads();
    if (warp % WPR != 0) return false;
#pragma unroll
    for (int n = 0; n < N; ++n) {
      acc[n] = 0.0f;
      for (int p = 0; p < WPR; ++p) acc[n] += partial[warp + p][n];
    }
  }
  return lane == 0;
}

// A block of 8 warps serves 8 / WPR rows; the WPR warps of a row take
// interleaved 16-byte chunks, so short matrices still keep enough loads in
// flight. N: compiled row capacity (>= rows).
template <class T, class O, int N, int WPR, bool kVector, bool kDual>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                O* __restrict__ out, int m, int k, int rows) {
  grid_dependency_wait();
  constexpr int kRows = kWarpsPerBlock / WPR, M = kDual ? 2 * N : N;
  __shared__ float partial[kWarpsPerBlock][M];
  const int warp = threadIdx.x / 32;
  const int row = blockIdx.x * kRows + warp / WPR, part = warp % WPR;
  float acc[N], acc_u[N];
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = acc_u[n] = 0.0f;
  if (row < m) {
    const T* wr = w + static_cast<int64_t>(row) * k;
    row_dots<T, N, WPR, kVector, kDual>(x, wr, wr + static_cast<int64_t>(m) * k, rows, k, part, acc, acc_u);
  }
  float both[M];
#pragma unroll
  for (int n = 0; n < N; ++n) {
    both[n] = acc[n];
    if constexpr (kDual) both[N + n] = acc_u[n];
  }
  if (!combine_parts<M, WPR>(both, partial) || row >= m) return;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    acc[n] = both[n];
    if constexpr (kDual) acc_u[n] = both[N + n];
  }
  const float b = bias ? to_f(bias[row]) : 0.0f;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    if (n >= rows) break;
    if constexpr (kDual) {
      // Rounded as the separate projection and silu_mul kernels would round.
      const float g = round_to<T>(acc[n] + b);
      const float u = round_to<T>(acc_u[n] + (bias ? to_f(bias[m + row]) : 0.0f));
      out[static_cast<int64_t>(n) * m + row] = from_f<O>(round_to<T>(g / (1.0f + __expf(-g))) * u);
    } else {
      out[static_cast<int64_t>(n) * m + row] = from_f<O>(acc[n] + b);
    }
  }
}

template <class T, class O, int N, int WPR, bool kDual>
void launch_wpr(const void* x, const void* w, const void* bias, int rows, int m, int k, void* out, bool vec,
                cudaStream_t s) {
  const int blocks = (m + kWarpsPerBlock / WPR - 1) / (kWarpsPerBlock / WPR);
  auto xt = static_cast<const T*>(x), wt = static_cast<const T*>(w), bt = static_cast<const T*>(bias);
  auto ot = static_cast<O*>(out);
  if constexpr (WPR == 1) {
    if (!vec) {
      launch_pdl(gemv_kernel<T, O, N, 1, false, kDual>, blocks, kWarpsPerBlock * 32, 0, s, xt, wt, bt, ot, m, k, rows);
      return;
    }
  }
  launch_pdl(gemv_kernel<T, O, N, WPR, true, kDual>, blocks, kWarpsPerBlock * 32, 0, s, xt, wt, bt, ot, m, k, rows);
}

// Warps per row: enough warps over the whole matrix to cover the GPU many
// times (about 6000 on an H100), but no more than the row has 16-byte
// chunks. Rows that cannot take 16-byte loads use one warp each.
template <class T, class O, int N, bool kDual>
void launch_n(const void* x, const void* w, const void* bias, int rows, int m, int k, void* out, cudaStream_t s) {
  const bool vec = (k * sizeof(T)) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(w) % 16 == 0;
  const int chunks = k / (32 * static_cast<int>(16 / sizeof(T)));
  const int64_t rows_read = kDual ? 2 * int64_t{m} : m;
  int wpr = 1;
  while (vec && wpr < 8 && rows_read * wpr < 6144 && chunks >= 2 * wpr) wpr *= 2;
  switch (wpr) {
    case 1: launch_wpr<T, O, N, 1, kDual>(x, w, bias, rows, m, k, out, vec, s); break;
    case 2: launch_wpr<T, O, N, 2, kDual>(x, w, bias, rows, m, k, out, vec, s); break;
    case 4: launch_wpr<T, O, N, 4, kDual>(x, w, bias, rows, m, k, out, vec, s); break;
    default: launch_wpr<T, O, N, 8, kDual>(x, w, bias, rows, m, k, out, vec, s); break;
  }
}

// Row counts round up to 1, 2, 4 or 8 compiled variants.
template <class T, class O, bool kDual = false>
void launch(const void* x, const void* w, const void* bias, int n, int m, int k, void* out, cudaStream_t s) {
  if (n <= 1) {
    launch_n<T, O, 1, kDual>(x, w, bias, n, m, k, out, s);
  } else if (n <= 2) {
    launch_n<T, O, 2, kDual>(x, w, bias, n, m, k, out, s);
  } else if (n <= 4) {
    launch_n<T, O, 4, kDual>(x, w, bias, n, m, k, out, s);
  } else {
    launch_n<T, O, 8, kDual>(x, w, bias, n, m, k, out, s);
  }
}

}  // namespace

void gemv_swiglu(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* out,
                 cudaStream_t s) {
  if (n == 0 || m == 0) return;
  NATIVELM_DISPATCH(t, (launch<T, T, true>(x, w, bias, n, m, k, out, s)));
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
