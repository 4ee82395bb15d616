// Decode GEMV whose weights are requested before the kernel waits.
//
// One block per multiprocessor owns a contiguous run of output rows, so its
// share of the weights is one contiguous span, small enough for shared
// memory in a decode step's matrices (up to about 100 KB per block). The
// block requests the whole span with cp.async before it waits for the
// kernel before it (weights are never produced upstream), so the next
// matrix is on its way while the previous kernel still runs, and after the
// wait only the input staging, the dot products out of shared memory and
// the stores remain. The block leaves half a multiprocessor free, so the
// next kernel's block fits beside it and does the same. Larger matrices
// (the LM head, 8B-class layers) stay on gemv.cu's kernel, which streams.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/gemv_common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kThreads = 512, kWarps = kThreads / 32;
// Shared memory per block (input rows + weight span): at most this much, so
// that two blocks (this kernel's and its neighbour's) fit on one SM.
constexpr int kSmemBudget = 104 << 10;
// Output rows per block at most (partial sums in static shared memory).
constexpr int kMaxSpan = 64;

// Requests rows [r0, r1) of w (and for kDual the up rows m + r0 ...) into ws.
template <class T, bool kDual>
__device__ __forceinline__ void request_span(const T* w, T* ws, int r0, int r1, int m, int k) {
  const int pieces = (r1 - r0) * k / 8;
  const T* src = w + static_cast<int64_t>(r0) * k;
  for (int p = threadIdx.x; p < pieces; p += kThreads) cp_async16(ws + p * 8, src + static_cast<int64_t>(p) * 8);
  if constexpr (kDual) {
    const T* src_u = w + static_cast<int64_t>(m + r0) * k;
    T* ws_u = ws + (r1 - r0) * k;
    for (int p = threadIdx.x; p < pieces; p += kThreads)
      cp_async16(ws_u + p * 8, src_u + static_cast<int64_t>(p) * 8);
  }
  cp_async_commit();
}

// xs = the input rows as the projection sees them: x, or for the norm modes
// exactly what the RMSNorm kernel would write (rounded to T twice).
template <class T, int N, int kMode>
__device__ __forceinline__ void stage_input(const T* x, const T* nw, float eps, int rows, int k, T* xs) {
  __shared__ float rstd[N];
  constexpr bool kNormed = has_norm(kMode);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, pieces = k / 8;
  if constexpr (kNormed) {
    for (int n = warp; n < rows; n += kWarps) {
      float ss = 0.0f;
      for (int p = lane; p < pieces; p += 32) {
        const uint4 v = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(n) * k + p * 8);
        ss += dot8<T>(v, v);
      }
      ss = warp_sum(ss);
      if (lane == 0) rstd[n] = rsqrtf(ss / static_cast<float>(k) + eps);
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < rows * pieces; i += kThreads) {
    const int n = i / pieces, p = i % pieces;
    uint4 v = *reinterpret_cast<const uint4*>(x + static_cast<int64_t>(n) * k + p * 8);
    if constexpr (kNormed) {
      const uint4 g = *reinterpret_cast<const uint4*>(nw + p * 8);
      T* vt = reinterpret_cast<T*>(&v);
      const T* gt = reinterpret_cast<const T*>(&g);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[e] = from_f<T>(gemv_input<T, kMode>(to_f(vt[e]), to_f(gt[e]), rstd[n]));
    }
    *reinterpret_cast<uint4*>(xs + n * k + p * 8) = v;
  }
}

// Warp `it` of the span's items takes row it / wpr, part it % wpr of its
// 16-byte pieces; its sums land in partial[it].
template <class T, int N, bool kDual>
__device__ __forceinline__ void span_dots(const T* ws, const T* xs, int span, int wpr, int rows, int k,
                                          float (*partial)[2][N]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int it = warp; it < span * wpr; it += kWarps) {
    const int r = it / wpr, part = it % wpr;
    const T* wr = ws + r * k;
    const T* wu = ws + (span + r) * k;
    float acc[N], acc_u[N];
    row_dots<T, N, kDual>(wr, wu, xs, k, part, wpr, rows, acc, acc_u);
    if (lane == 0)
#pragma unroll
      for (int n = 0; n < N; ++n) {
        partial[it][0][n] = acc[n];
        partial[it][1][n] = kDual ? acc_u[n] : 0.0f;
      }
  }
}

// Sums the parts of each (row, input row) pair and writes the output.
template <class T, class O, int N, int kMode>
__device__ __forceinline__ void span_finish(const float (*partial)[2][N], int r0, int span, int wpr, int rows,
                                            int m, const T* bias, O* out) {
  for (int i = threadIdx.x; i < span * N; i += kThreads) {
    const int r = i / N, n = i % N, row = r0 + r;
    if (n >= rows) continue;
    float g = 0.0f, u = 0.0f;
    for (int p = 0; p < wpr; ++p) {
      g += partial[r * wpr + p][0][n];
      u += partial[r * wpr + p][1][n];
    }
    gemv_store<T, O, kMode>(g, u, bias, row, m, out + static_cast<int64_t>(n) * m + row);
  }
}

template <class T, class O, int N, int kMode>
__global__ void __launch_bounds__(kThreads)
    prefetch_kernel(const T* __restrict__ x, const T* __restrict__ nw, float eps, const T* __restrict__ w,
                    const T* __restrict__ bias, O* __restrict__ out, int m, int k, int rows) {
  constexpr bool kDual = kMode == kNormSwiglu;
  extern __shared__ uint4 smem[];
  __shared__ float partial[kMaxSpan > kWarps ? kMaxSpan : kWarps][2][N];
  T* xs = reinterpret_cast<T*>(smem);
  T* ws = xs + N * k;
  const int r0 = static_cast<int>(int64_t{blockIdx.x} * m / gridDim.x);
  const int r1 = static_cast<int>(int64_t{blockIdx.x + 1} * m / gridDim.x);
  const int span = r1 - r0;
  request_span<T, kDual>(w, ws, r0, r1, m, k);
  grid_dependency_wait();
  grid_dependency_trigger();
  // Few rows: split each row over several warps.
  int wpr = 1;
  while (span * wpr * 2 <= kWarps) wpr *= 2;
  stage_input<T, N, kMode>(x, nw, eps, rows, k, xs);
  cp_async_wait_all();
  __syncthreads();
  span_dots<T, N, kDual>(ws, xs, span, wpr, rows, k, partial);
  __syncthreads();
  span_finish<T, O, N, kMode>(partial, r0, span, wpr, rows, m, bias, out);
}

int multiprocessors() {
  static const int count = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n > 0 ? n : 1;
  }();
  return count;
}

template <class T, class O, int N, int kMode>
bool launch(const GemvArgs& g, cudaStream_t s) {
  constexpr int kRowsRead = kMode == kNormSwiglu ? 2 : 1;
  const auto aligned = [](const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (g.k % 8 != 0 || !aligned(g.x) || !aligned(g.w) || !aligned(g.nw)) return false;
  const int grid = std::min(multiprocessors(), g.m);
  const int64_t span = (g.m + grid - 1) / grid;
  const int64_t smem = int64_t{N} * g.k * 2 + span * kRowsRead * g.k * 2;
  if (span > kMaxSpan || smem > kSmemBudget) return false;
  auto kernel = prefetch_kernel<T, O, N, kMode>;
  static const bool raised =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBudget) == cudaSuccess;
  if (!raised) return false;
  launch_pdl(kernel, grid, kThreads, static_cast<size_t>(smem), s, static_cast<const T*>(g.x),
             static_cast<const T*>(g.nw), g.eps, static_cast<const T*>(g.w), static_cast<const T*>(g.bias),
             static_cast<O*>(g.out), g.m, g.k, g.rows);
  return true;
}

template <class T, class O, int kMode>
bool launch_rows(const GemvArgs& g, cudaStream_t s) {
  if (g.rows <= 1) return launch<T, O, 1, kMode>(g, s);
  if (g.rows <= 2) return launch<T, O, 2, kMode>(g, s);
  if (g.rows <= 4) return launch<T, O, 4, kMode>(g, s);
  return launch<T, O, 8, kMode>(g, s);
}

template <class T>
bool dispatch(Ty out_t, GemvMode mode, const GemvArgs& g, cudaStream_t s) {
  switch (mode) {
    case kPlain: return out_t == Ty::F32 ? launch_rows<T, float, kPlain>(g, s) : launch_rows<T, T, kPlain>(g, s);
    case kNorm: return launch_rows<T, T, kNorm>(g, s);
    case kNormSwiglu: return launch_rows<T, T, kNormSwiglu>(g, s);
    case kAdd: return launch_rows<T, T, kAdd>(g, s);
  }
  return false;
}

}  // namespace

bool gemv_prefetch(Ty t, Ty out_t, GemvMode mode, const GemvArgs& g, cudaStream_t s) {
  if (g.rows < 1 || g.rows > kGemvMaxRows || (out_t != t && out_t != Ty::F32)) return false;
  if (t == Ty::BF16) return dispatch<__nv_bfloat16>(out_t, mode, g, s);
  if (t == Ty::F16) return dispatch<__half>(out_t, mode, g, s);
  return false;
}

}  // namespace nativelm::cuda
