#pragma once
// What the sampling and log-probability kernels share: a row of logits is
// cut into slices of ~1k tokens, one block each (a 152k row is too long for
// one block to pass over repeatedly), with per-row scratch for the slices'
// results and the candidates they keep; and the block-wide helpers both use.
#include <algorithm>
#include <cfloat>
#include <climits>

#include "backend/cuda/common.cuh"

namespace nativelm::cuda::rows {

constexpr int kSliceThreads = 256;
constexpr int kPickThreads = 1024;
constexpr int kSliceTarget = 1024;  // tokens per slice, about
constexpr int kMaxSlices = 256;     // at most kPickThreads (the pick takes one slice per thread)
constexpr int kBins = 512;
constexpr float kBinScale = 8.0f * 1.4426950408889634f;  // bins per unit of (max - logit) / T
constexpr int kMaxCands = 2048;                          // a power of two (the sort)
constexpr int kChunkRows = 64;                           // rows per pass over the scratch

struct Geometry {
  int slices, len;  // slices per row, tokens per slice (the last may be shorter)
};
inline Geometry geometry(int vocab) {
  const int slices = std::min(kMaxSlices, std::max(1, (vocab + kSliceTarget - 1) / kSliceTarget));
  return {slices, (vocab + slices - 1) / slices};
}
__host__ __device__ inline int cand_capacity(int len) { return len < kMaxCands ? len : kMaxCands; }

struct Cand {
  float logit;
  int32_t id;
};

// Per chunk of rows; each array is [rows, ...].
struct Scratch {
  float* slice_max;
  int32_t* slice_arg;
  float* slice_mass;
  int32_t* cand_count;
  uint32_t* hist_count;
  unsigned long long* hist_mass;
  Cand* cands;  // [rows, slices, cand_capacity(len)]
};

inline size_t align_up(size_t n) { return (n + 255) / 256 * 256; }

inline Scratch carve(void* base, int vocab) {
  const Geometry g = geometry(vocab);
  const size_t per_slices = static_cast<size_t>(kChunkRows) * g.slices;
  auto* p = static_cast<unsigned char*>(base);
  Scratch sc;
  sc.slice_max = reinterpret_cast<float*>(p), p += align_up(per_slices * 4);
  sc.slice_arg = reinterpret_cast<int32_t*>(p), p += align_up(per_slices * 4);
  sc.slice_mass = reinterpret_cast<float*>(p), p += align_up(per_slices * 4);
  sc.cand_count = reinterpret_cast<int32_t*>(p), p += align_up(per_slices * 4);
  sc.hist_count = reinterpret_cast<uint32_t*>(p), p += align_up(size_t{kChunkRows} * kBins * 4);
  sc.hist_mass = reinterpret_cast<unsigned long long*>(p), p += align_up(size_t{kChunkRows} * kBins * 8);
  sc.cands = reinterpret_cast<Cand*>(p);
  return sc;
}

// Calls f(r0, n, l, grid) for each chunk of at most kChunkRows rows (the
// scratch holds one chunk's results): rows [r0, r0 + n), l their logits,
// grid one block per (slice, row).
template <class F>
void for_each_chunk(const float* logits, int rows, int vocab, Geometry g, const F& f) {
  for (int r0 = 0; r0 < rows; r0 += kChunkRows) {
    const int n = std::min(kChunkRows, rows - r0);
    f(r0, n, logits + static_cast<int64_t>(r0) * vocab, dim3(g.slices, n));
  }
}

inline size_t scratch_bytes(int vocab) {
  const Geometry g = geometry(vocab);
  const size_t slices = static_cast<size_t>(kChunkRows) * g.slices;
  return 4 * align_up(slices * 4) + align_up(size_t{kChunkRows} * kBins * 4) +
         align_up(size_t{kChunkRows} * kBins * 8) + slices * cand_capacity(g.len) * sizeof(Cand);
}

// The larger of two (value, index) pairs; the first index on a tie.
__device__ __forceinline__ void better(float& v, int& i, float v2, int i2) {
  if (v2 > v || (v2 == v && i2 < i)) v = v2, i = i2;
}

// Every thread gets the row's maximum, from the slices' maxima.
__device__ __forceinline__ float row_max(const float* slice_max, int slices) {
  __shared__ float mx;
  if (threadIdx.x < 32) {
    float v = -INFINITY;
    for (int s = threadIdx.x; s < slices; s += 32) v = fmaxf(v, slice_max[s]);
    v = warp_max(v);
    if (threadIdx.x == 0) mx = v;
  }
  __syncthreads();
  return mx;
}

__device__ __forceinline__ int cap(Geometry g) { return cand_capacity(g.len); }

// Writes the tokens of [begin, end) whose logit passes `keep` to out, in
// vocabulary order (at most `capacity`), and returns how many passed; each
// pass of the block places its tokens by a prefix count.
template <class Keep>
__device__ int keep_in_order(const float* row, int begin, int end, Cand* out, int capacity, const Keep& keep) {
  __shared__ int warp_base[kSliceThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int kept = 0;
  for (int base = begin; base < end; base += blockDim.x) {
    const int j = base + threadIdx.x;
    const float l = j < end ? row[j] : 0.0f;
    const bool pass = j < end && keep(l);
    const unsigned ballot = __ballot_sync(0xffffffffu, pass);
    if (lane == 0) warp_base[warp] = __popc(ballot);
    __syncthreads();
    int before = kept, all = 0;
    for (int w = 0; w < kSliceThreads / 32; ++w) {
      if (w < warp) before += warp_base[w];
      all += warp_base[w];
    }
    before += __popc(ballot & ((1u << lane) - 1));
    if (pass && before < capacity) out[before] = Cand{l, j};
    kept += all;
    __syncthreads();
  }
  return kept;
}

// The value of rank k (0: the largest) of the n values v, ties broken by
// index; every thread gets it. n <= blockDim.x is not required.
__device__ __forceinline__ float kth_largest(const float* v, int n, int k) {
  __shared__ float found;
  for (int t = threadIdx.x; t < n; t += blockDim.x) {
    const float x = v[t];
    int rank = 0;
    for (int j = 0; j < n; ++j) rank += v[j] > x || (v[j] == x && j < t);
    if (rank == k) found = x;
  }
  __syncthreads();
  return found;
}

// The first of the n edits (sorted by (row, token)) at or after (r, t).
__device__ __forceinline__ int find_edit(const EditRow* edits, int n, int r, int t) {
  int lo = 0, hi = n;
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (edits[mid].row < r || (edits[mid].row == r && edits[mid].token < t))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

// Exclusive prefix sums of one value per thread over the block (warp scans,
// then the warps' totals; a fixed order, so the same bits every time);
// `total` gets the sum.
template <class V>
__device__ V block_exclusive_scan(V v, V& total) {
  __shared__ V warp_total[kPickThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  V incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const V x = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += x;
  }
  if (lane == 31) warp_total[warp] = incl;
  __syncthreads();
  V before = V(0), sum = V(0);
  for (int w = 0; w < warps; ++w) {
    if (w == warp) before = sum;
    sum += warp_total[w];
  }
  total = sum;
  __syncthreads();
  return before + incl - v;
}

}  // namespace nativelm::cuda::rows
