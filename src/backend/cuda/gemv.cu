// Matrix-vector products for small batches (decode): a weight row is streamed
// once with 16-byte loads and applied to all n input rows, so each step
// reads the weights exactly once, close to memory bandwidth. Larger batches
// go to cuBLASLt (gemm.cpp). 16-bit products whose per-block share of the
// weights fits in shared memory (a decode step's layer matrices) go to
// gemv_prefetch.cu instead; this kernel streams the rest (the LM head,
// 8B-class layers, f32).
//
// kDual is the MLP's fused gate/up projection: output row i reads weight
// rows i (gate) and m + i (up) and writes silu(gate) * up, so the [n, 2m]
// intermediate never exists.
#include <cstdlib>
#include <cstring>

#include "backend/cuda/gemv_common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

template <class T, int N, int V, int kMode>
__device__ __forceinline__ void fma_chunk(const uint4& wv, const T* x, const T* nw, const float* rstd, int rows,
                                          int k, int j, float (&acc)[N]) {
  const T* wt = reinterpret_cast<const T*>(&wv);
  float nf[V];
  if constexpr (has_norm(kMode)) {
    const uint4 nv = *reinterpret_cast<const uint4*>(nw + j);
#pragma unroll
    for (int e = 0; e < V; ++e) nf[e] = to_f(reinterpret_cast<const T*>(&nv)[e]);
  }
#pragma unroll
  for (int n = 0; n < N; ++n) {
    if (n >= rows) break;
    const uint4 xv = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(n) * k + j);
    const T* xt = reinterpret_cast<const T*>(&xv);
#pragma unroll
    for (int e = 0; e < V; ++e)
      acc[n] += to_f(wt[e]) * gemv_input<T, kMode>(to_f(xt[e]), has_norm(kMode) ? nf[e] : 0.0f,
                                              has_norm(kMode) ? rstd[n] : 0.0f);
  }
}

// A warp's kBatch 16-byte chunks of a weight row (and of its up row for
// kNormSwiglu) at j, j + step, ...; chunks past k are zero.
template <class T, int kMode>
struct Chunks {
  static constexpr bool kDual = kMode == kNormSwiglu;
  static constexpr int kBatch = kDual ? 2 : 4;
  uint4 w[kBatch], u[kBatch];

  // Chunks at and past k read as zero.
  __device__ __forceinline__ void load(const T* wr, const T* wu, int j, int step, int k) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const bool in = j + b * step < k;
      w[b] = in ? __ldg(reinterpret_cast<const uint4*>(wr + j + b * step)) : make_uint4(0, 0, 0, 0);
      if constexpr (kDual) u[b] = in ? __ldg(reinterpret_cast<const uint4*>(wu + j + b * step)) : make_uint4(0, 0, 0, 0);
    }
  }
};

// Dot products of one weight row (and its up row for kNormSwiglu) with the
// rows of x, over this warp's share of k. Vector path with kPreload: `c`
// already holds the first batch (loaded before the kernel waited for x).
// Each batch of loads is in flight before any of it is used.
template <class T, int N, int WPR, bool kVector, int kMode, bool kPreload>
__device__ __forceinline__ void row_dots(const T* x, const T* nw, const float* rstd, const T* wr, const T* wu,
                                         int rows, int k, int part, Chunks<T, kMode>& c, float (&acc)[N],
                                         float (&acc_u)[N]) {
  constexpr bool kDual = kMode == kNormSwiglu;
  const int lane = threadIdx.x % 32;
  if constexpr (kVector) {
    constexpr int V = 16 / sizeof(T), kBatch = Chunks<T, kMode>::kBatch;
    const int step = WPR * 32 * V;
    int j = (part * 32 + lane) * V;
    if constexpr (kPreload) {
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        if (j + b * step >= k) break;
        fma_chunk<T, N, V, kMode>(c.w[b], x, nw, rstd, rows, k, j + b * step, acc);
        if constexpr (kDual) fma_chunk<T, N, V, kMode>(c.u[b], x, nw, rstd, rows, k, j + b * step, acc_u);
      }
      j += kBatch * step;
    }
    // Whole batches (all loads in flight before the first is used), then
    // chunk by chunk.
    for (; j + (kBatch - 1) * step < k; j += kBatch * step) {
      uint4 wv[kBatch], uv[kBatch];
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        wv[b] = __ldg(reinterpret_cast<const uint4*>(wr + j + b * step));
        if constexpr (kDual) uv[b] = __ldg(reinterpret_cast<const uint4*>(wu + j + b * step));
      }
#pragma unroll
      for (int b = 0; b < kBatch; ++b) {
        fma_chunk<T, N, V, kMode>(wv[b], x, nw, rstd, rows, k, j + b * step, acc);
        if constexpr (kDual) fma_chunk<T, N, V, kMode>(uv[b], x, nw, rstd, rows, k, j + b * step, acc_u);
      }
    }
    for (; j < k; j += step) {
      fma_chunk<T, N, V, kMode>(__ldg(reinterpret_cast<const uint4*>(wr + j)), x, nw, rstd, rows, k, j, acc);
      if constexpr (kDual)
        fma_chunk<T, N, V, kMode>(__ldg(reinterpret_cast<const uint4*>(wu + j)), x, nw, rstd, rows, k, j, acc_u);
    }
  } else {
    for (int j = part * 32 + lane; j < k; j += WPR * 32) {
      const float wf = to_f(wr[j]), uf = kDual ? to_f(wu[j]) : 0.0f;
      const float nf = has_norm(kMode) ? to_f(nw[j]) : 0.0f;
#pragma unroll
      for (int n = 0; n < N; ++n) {
        if (n >= rows) break;
        const float xf = gemv_input<T, kMode>(to_f(x[static_cast<int64_t>(n) * k + j]), nf,
                                         has_norm(kMode) ? rstd[n] : 0.0f);
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
template <class T, class O, int N, int WPR, bool kVector, int kMode, bool kPreload>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    gemv_kernel(const T* __restrict__ x, const T* __restrict__ nw, float eps, const T* __restrict__ w,
                const T* __restrict__ bias, O* __restrict__ out, int m, int k, int rows) {
  constexpr bool kDual = kMode == kNormSwiglu;
  constexpr int kRows = kWarpsPerBlock / WPR, M = kDual ? 2 * N : N;
  __shared__ float partial[kWarpsPerBlock][M];
  __shared__ float rstd[N];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kRows + warp / WPR, part = warp % WPR;
  const T* wr = w + static_cast<int64_t>(row) * k;
  const T* wu = wr + static_cast<int64_t>(m) * k;
  // Weights are not produced upstream: with kPreload the first batch of
  // loads goes out before the wait and overlaps the previous kernel's tail.
  // That costs registers (occupancy), so only short, latency-bound matrices
  // take it; long ones stream at full occupancy.
  Chunks<T, kMode> chunks;
  constexpr int V = 16 / static_cast<int>(sizeof(T));
  if (kPreload && kVector && row < m) chunks.load(wr, wu, (part * 32 + lane) * V, WPR * 32 * V, k);
  grid_dependency_wait();
  grid_dependency_trigger();
  if constexpr (has_norm(kMode)) {
    // Every block recomputes the few rows' RMS (2 KB each, from L2).
    for (int n = warp; n < rows; n += kWarpsPerBlock) {
      float ss = 0.0f;
      for (int j = lane; j < k; j += 32) {
        const float v = to_f(x[static_cast<int64_t>(n) * k + j]);
        ss += v * v;
      }
      ss = warp_sum(ss);
      if (lane == 0) rstd[n] = rsqrtf(ss / static_cast<float>(k) + eps);
    }
    __syncthreads();
  }
  float acc[N], acc_u[N];
#pragma unroll
  for (int n = 0; n < N; ++n) acc[n] = acc_u[n] = 0.0f;
  if (row < m) row_dots<T, N, WPR, kVector, kMode, kPreload>(x, nw, rstd, wr, wu, rows, k, part, chunks, acc, acc_u);
  float both[M];
#pragma unroll
  for (int n = 0; n < N; ++n) {
    both[n] = acc[n];
    if constexpr (kDual) both[N + n] = acc_u[n];
  }
  if (!combine_parts<M, WPR>(both, partial) || row >= m) return;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    if (n >= rows) break;
    gemv_store<T, O, kMode>(both[n], kDual ? both[N + n] : 0.0f, bias, row, m, out + static_cast<int64_t>(n) * m + row);
  }
}

template <class T, class O, int N, int WPR, int kMode>
void launch_wpr(const GemvArgs& g, bool vec, cudaStream_t s) {
  const int blocks = (g.m + kWarpsPerBlock / WPR - 1) / (kWarpsPerBlock / WPR);
  auto xt = static_cast<const T*>(g.x), nt = static_cast<const T*>(g.nw), wt = static_cast<const T*>(g.w);
  auto bt = static_cast<const T*>(g.bias);
  auto ot = static_cast<O*>(g.out);
  if constexpr (WPR == 1) {
    if (!vec) {
      launch_pdl(gemv_kernel<T, O, N, 1, false, kMode, false>, blocks, kWarpsPerBlock * 32, 0, s, xt, nt, g.eps, wt,
                 bt, ot, g.m, g.k, g.rows);
      return;
    }
  }
  // Batch-1 decode over a matrix of at most kPreloadBytes: see gemv_kernel.
  constexpr int64_t kPreloadBytes = int64_t{32} << 20;
  const int64_t bytes = (kMode == kNormSwiglu ? 2 : 1) * int64_t{g.m} * g.k * static_cast<int64_t>(sizeof(T));
  if constexpr (N == 1) {
    if (bytes <= kPreloadBytes) {
      launch_pdl(gemv_kernel<T, O, N, WPR, true, kMode, true>, blocks, kWarpsPerBlock * 32, 0, s, xt, nt, g.eps, wt,
                 bt, ot, g.m, g.k, g.rows);
      return;
    }
  }
  launch_pdl(gemv_kernel<T, O, N, WPR, true, kMode, false>, blocks, kWarpsPerBlock * 32, 0, s, xt, nt, g.eps, wt, bt,
             ot, g.m, g.k, g.rows);
}

// Warps per row: enough warps over the whole matrix to cover the GPU many
// times (about 6000 on an H100), but no more than the row has 16-byte
// chunks. Rows that cannot take 16-byte loads use one warp each.
template <class T, class O, int N, int kMode>
void launch_n(const GemvArgs& g, cudaStream_t s) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  const bool vec = (g.k * sizeof(T)) % 16 == 0 && aligned(g.x) && aligned(g.w) && (!g.nw || aligned(g.nw));
  const int chunks = g.k / (32 * static_cast<int>(16 / sizeof(T)));
  const int64_t rows_read = kMode == kNormSwiglu ? 2 * int64_t{g.m} : g.m;
  int wpr = 1;
  while (vec && wpr < 8 && rows_read * wpr < 6144 && chunks >= 2 * wpr) wpr *= 2;
  switch (wpr) {
    case 1: launch_wpr<T, O, N, 1, kMode>(g, vec, s); break;
    case 2: launch_wpr<T, O, N, 2, kMode>(g, vec, s); break;
    case 4: launch_wpr<T, O, N, 4, kMode>(g, vec, s); break;
    default: launch_wpr<T, O, N, 8, kMode>(g, vec, s); break;
  }
}

// Row counts round up to 1, 2, 4 or 8 compiled variants.
template <class T, class O, int kMode>
void launch(const GemvArgs& g, cudaStream_t s) {
  if (g.rows <= 1) {
    launch_n<T, O, 1, kMode>(g, s);
  } else if (g.rows <= 2) {
    launch_n<T, O, 2, kMode>(g, s);
  } else if (g.rows <= 4) {
    launch_n<T, O, 4, kMode>(g, s);
  } else {
    launch_n<T, O, 8, kMode>(g, s);
  }
}

// The prefetching kernel (gemv_prefetch.cu) where it fits; NATIVELM_GEMV_PREFETCH=0
// keeps every product on the kernel above, for side-by-side measurements.
bool prefetched(Ty t, Ty out_t, GemvMode mode, const GemvArgs& g, cudaStream_t s) {
  static const bool enabled = [] {
    const char* v = std::getenv("NATIVELM_GEMV_PREFETCH");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled && gemv_prefetch(t, out_t, mode, g, s);
}

}  // namespace

void gemv(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* out, Ty out_t,
          cudaStream_t s) {
  if (n == 0 || m == 0) return;
  const GemvArgs g{x, nullptr, 0.0f, w, bias, n, m, k, out};
  if (prefetched(t, out_t, kPlain, g, s)) return;
  if (out_t == Ty::F32) {
    NATIVELM_DISPATCH(t, (launch<T, float, kPlain>(g, s)));
  } else {
    NATIVELM_DISPATCH(t, (launch<T, T, kPlain>(g, s)));
  }
}

void gemv_norm(Ty t, const void* x, const void* norm, float eps, const void* w, const void* bias, int n, int m,
               int k, void* out, bool swiglu, cudaStream_t s) {
  if (n == 0 || m == 0) return;
  const GemvArgs g{x, norm, eps, w, bias, n, m, k, out};
  if (prefetched(t, t, swiglu ? kNormSwiglu : kNorm, g, s)) return;
  if (swiglu) {
    NATIVELM_DISPATCH(t, (launch<T, T, kNormSwiglu>(g, s)));
  } else {
    NATIVELM_DISPATCH(t, (launch<T, T, kNorm>(g, s)));
  }
}

void gemv_add(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* residual,
              cudaStream_t s) {
  if (n == 0 || m == 0) return;
  const GemvArgs g{x, nullptr, 0.0f, w, bias, n, m, k, residual};
  if (prefetched(t, t, kAdd, g, s)) return;
  NATIVELM_DISPATCH(t, (launch<T, T, kAdd>(g, s)));
}

}  // namespace nativelm::cuda
