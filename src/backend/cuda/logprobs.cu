// Log-probabilities reported with a pick (rows whose TokenPick asks for
// them), of the raw logits: log Z from the slices' maxima and sums, the top
// n from the tokens at or above the n-th largest slice maximum (sorted in
// one block), and, after the pick, the picked token's logit from before its
// edit.
#include "backend/cuda/sample_rows.cuh"

namespace nativelm::cuda {

namespace {

using namespace rows;

// Each slice's maximum and its sum of exp(logit - maximum).
__global__ void lp_stats_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc) {
  const int r = blockIdx.y, s = blockIdx.x;
  if (picks[r].logprobs < 0) return;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const int begin = s * g.len, end = min(vocab, begin + g.len);
  __shared__ float mx;
  float m = -INFINITY;
  for (int j = begin + threadIdx.x; j < end; j += blockDim.x) m = fmaxf(m, row[j]);
  m = warp_max(m);
  __shared__ float part[kSliceThreads / 32];
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kSliceThreads / 32; ++w) m = fmaxf(m, part[w]);
    mx = m;
  }
  __syncthreads();
  float sum = 0.0f;
  if (mx > -INFINITY)
    for (int j = begin + threadIdx.x; j < end; j += blockDim.x) sum += __expf(row[j] - mx);
  sum = block_sum(sum);
  if (threadIdx.x == 0) {
    sc.slice_max[r * g.slices + s] = mx;
    sc.slice_mass[r * g.slices + s] = sum;
  }
}

// The tokens that can be among the row's top n: at or above the n-th
// largest slice maximum.
__global__ void lp_select_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc) {
  const int r = blockIdx.y, s = blockIdx.x;
  const int n = picks[r].logprobs;
  if (n <= 0) return;
  const float least = n <= g.slices ? kth_largest(sc.slice_max + r * g.slices, g.slices, n - 1) : -INFINITY;
  const int begin = s * g.len, end = min(vocab, begin + g.len);
  const int kept = keep_in_order(logits + static_cast<int64_t>(r) * vocab, begin, end,
                                 sc.cands + (static_cast<int64_t>(r) * g.slices + s) * cap(g), cap(g),
                                 [&](float l) { return l >= least; });
  if (threadIdx.x == 0) sc.cand_count[r * g.slices + s] = kept;
}

// (logit, id) a comes before b: the larger logit, then the smaller id.
__device__ __forceinline__ bool before(float la, int ia, float lb, int ib) { return la > lb || (la == lb && ia < ib); }

// The row's log-partition and its top n tokens: lp[0] = log Z, lp[2 + 2i] =
// the i-th token (its bits), lp[3 + 2i] = its log-probability.
__global__ void __launch_bounds__(kPickThreads)
    lp_top_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc, float* lp) {
  const int r = blockIdx.x;
  const int n = picks[r].logprobs;
  if (n < 0) return;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const float gmax = row_max(sc.slice_max + r * g.slices, g.slices);
  const float m = threadIdx.x < g.slices ? sc.slice_max[r * g.slices + threadIdx.x] : -INFINITY;
  const float part = m > -INFINITY ? __expf(m - gmax) * sc.slice_mass[r * g.slices + threadIdx.x] : 0.0f;
  const float log_z = gmax + __logf(block_sum(part));
  float* out = lp + static_cast<int64_t>(r) * kLogprobStride;
  if (threadIdx.x == 0) out[0] = log_z;
  if (n == 0) return;
  __shared__ float keys[kMaxCands];
  __shared__ int32_t ids[kMaxCands];
  const int count = threadIdx.x < g.slices ? sc.cand_count[r * g.slices + threadIdx.x] : 0;
  int total;
  const int start = block_exclusive_scan(count, total);
  if (total <= kMaxCands) {
    __shared__ int offset[kMaxSlices];
    if (threadIdx.x < g.slices) offset[threadIdx.x] = start;
    __syncthreads();
    for (int s = 0; s < g.slices; ++s) {
      const Cand* c = sc.cands + (static_cast<int64_t>(r) * g.slices + s) * cap(g);
      const int o = offset[s], k = (s + 1 < g.slices ? offset[s + 1] : total) - o;
      for (int i = threadIdx.x; i < k; i += blockDim.x) keys[o + i] = c[i].logit, ids[o + i] = c[i].id;
    }
    int size = 1;
    while (size < total) size <<= 1;
    for (int i = total + threadIdx.x; i < size; i += blockDim.x) keys[i] = -INFINITY, ids[i] = INT_MAX;
    __syncthreads();
    for (int k = 2; k <= size; k <<= 1)  // bitonic sort: the first comes first
      for (int j = k >> 1; j > 0; j >>= 1) {
        for (int i = threadIdx.x; i < size; i += blockDim.x) {
          const int o = i ^ j;
          if (o > i) {
            const bool swap =
                (i & k) == 0 ? before(keys[o], ids[o], keys[i], ids[i]) : before(keys[i], ids[i], keys[o], ids[o]);
            if (swap) {
              const float kv = keys[i];
              const int32_t iv = ids[i];
              keys[i] = keys[o], ids[i] = ids[o];
              keys[o] = kv, ids[o] = iv;
            }
          }
        }
        __syncthreads();
      }
    for (int i = threadIdx.x; i < min(n, total); i += blockDim.x) {
      out[2 + 2 * i] = __int_as_float(ids[i]);
      out[3 + 2 * i] = keys[i] - log_z;
    }
    return;
  }
  // Too many candidates (ties): n passes, each taking the next (logit, id)
  // in order after the one before.
  __shared__ float prev_l;
  __shared__ int prev_i;
  float pl = INFINITY;
  int pi = -1;
  for (int i = 0; i < min(n, vocab); ++i) {
    float bl = -INFINITY;
    int bi = INT_MAX;
    for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
      const float l = row[j];
      if (before(pl, pi, l, j) && before(l, j, bl, bi)) bl = l, bi = j;
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float l2 = __shfl_xor_sync(0xffffffffu, bl, o);
      const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
      if (before(l2, i2, bl, bi)) bl = l2, bi = i2;
    }
    __shared__ float wl[kPickThreads / 32];
    __shared__ int wi[kPickThreads / 32];
    if (threadIdx.x % 32 == 0) wl[threadIdx.x / 32] = bl, wi[threadIdx.x / 32] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
        if (before(wl[w], wi[w], bl, bi)) bl = wl[w], bi = wi[w];
      prev_l = bl, prev_i = bi;
      out[2 + 2 * i] = __int_as_float(bi);
      out[3 + 2 * i] = bl - log_z;
    }
    __syncthreads();
    pl = prev_l, pi = prev_i;
    __syncthreads();
  }
}

// The picked tokens' log-probabilities: their logit before the edits (an
// edited token's is in raw[]: the first `sorted` edits sorted by (row,
// token), then a fed row's extra one) less log Z.
__global__ void lp_chosen_kernel(const float* logits, int rows, int vocab, const SampleRow* picks, const int32_t* ids,
                                 const EditRow* edits, const float* raw, int sorted, float* lp) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows || picks[r].logprobs < 0) return;
  const int32_t t = ids[r];
  float v = logits[static_cast<int64_t>(r) * vocab + t];
  const int i = find_edit(edits, sorted, r, t);
  const int extra = picks[r].extra;
  if (i < sorted && edits[i].row == r && edits[i].token == t)
    v = raw[i];
  else if (extra >= 0 && edits[extra].token == t)
    v = raw[extra];
  float* out = lp + static_cast<int64_t>(r) * kLogprobStride;
  out[1] = v - out[0];
}

}  // namespace

void logprob_stats(const float* logits, int rows, int vocab, const SampleRow* picks, float* lp, void* scratch,
                   cudaStream_t s) {
  const Geometry g = geometry(vocab);
  const Scratch sc = carve(scratch, vocab);
  for_each_chunk(logits, rows, vocab, g, [&](int r0, int n, const float* l, dim3 grid) {
    lp_stats_kernel<<<grid, kSliceThreads, 0, s>>>(l, vocab, picks + r0, g, sc);
    lp_select_kernel<<<grid, kSliceThreads, 0, s>>>(l, vocab, picks + r0, g, sc);
    lp_top_kernel<<<n, kPickThreads, 0, s>>>(l, vocab, picks + r0, g, sc,
                                             lp + static_cast<int64_t>(r0) * kLogprobStride);
  });
}

void logprob_chosen(const float* logits, int rows, int vocab, const SampleRow* picks, const int32_t* ids,
                    const EditRow* edits, const float* raw, int sorted, float* lp, cudaStream_t s) {
  if (rows == 0) return;
  lp_chosen_kernel<<<(rows + 127) / 128, 128, 0, s>>>(logits, rows, vocab, picks, ids, edits, raw, sorted, lp);
}

}  // namespace nativelm::cuda
