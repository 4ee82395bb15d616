// Sampling on the device (temperature, top-k, top-p, min-p), the rule of
// pick_token on the host. A row of the vocabulary is too long for one block
// to pass over many times (a 152k row costs ~30 us a pass), so each row is
// cut into slices of ~1k tokens, one block each, and passed over at most
// three times:
//   1. slice_stats: each slice's maximum and its first index;
//   2. slice_histogram (rows with a top-p cut, or a top-k cut larger than
//      the number of slices): a histogram of q = exp((logit - max) / T) over
//      bins an eighth of an octave wide, counts and fixed-point masses
//      (integer sums, so a seed repeats);
//   3. slice_select: rows with a cut keep, in vocabulary order, the tokens
//      the cut can reach: those at or above the k-th largest slice maximum
//      (top-k), or those of the bins down to the first where the top-k count
//      or top-p mass is met; rows without a cut keep each slice's mass;
// then one block per row picks: greedy from the slice maxima; a draw
// without cuts finds its slice from the masses and walks only that slice;
// a cut row sorts its few candidates' q, takes the cuts exactly as the host
// does, and walks them. A cut row with more than kMaxCands candidates (a
// very flat distribution) falls back to bisecting the cut over the row.
#include "backend/cuda/sample_rows.cuh"

namespace nativelm::cuda {

namespace {

using namespace rows;

constexpr int kBisections = 24;

enum Mode { kGreedy, kDraw, kCut };

__device__ __forceinline__ int row_mode(const SampleRow& p, int vocab) {
  if (p.temperature <= 1e-5f || p.top_k == 1) return kGreedy;
  return (p.top_k > 0 && p.top_k < vocab) || p.top_p < 1.0f ? kCut : kDraw;
}

// A top-k cut of k <= slices takes its candidates from the slices' maxima
// (the k-th largest maximum bounds the k-th largest logit from below); other
// cuts from the histogram.
__host__ __device__ __forceinline__ bool cut_by_maxima(const SampleRow& p, int vocab, int slices) {
  return p.top_k > 0 && p.top_k < vocab && p.top_k <= slices;
}

struct RowView {
  const float* logits;
  int vocab;
  float max, inv_t;
  __device__ float q(float logit) const { return __expf((logit - max) * inv_t); }
  __device__ float q_at(int j) const { return q(logits[j]); }
  __device__ int bin(float logit) const {
    const float x = (max - logit) * inv_t * kBinScale;
    return x < static_cast<float>(kBins) ? static_cast<int>(x) : kBins - 1;  // NaN: the last bin
  }
};

__device__ __forceinline__ unsigned long long fixed_mass(float q) {
  return q > 0.0f ? __float2ull_rn(q * 4294967296.0f) : 0ull;  // units of 2^-32
}

__device__ RowView row_view(const float* logits, int vocab, const SampleRow& p, const float* slice_max, int slices) {
  return RowView{logits, vocab, row_max(slice_max, slices), 1.0f / p.temperature};
}

// --- 1. slice maxima ---

__global__ void slice_stats_kernel(const float* logits, int vocab, Geometry g, Scratch sc) {
  const int r = blockIdx.y, s = blockIdx.x;
  const float* row = logits + static_cast<int64_t>(r) * vocab;
  const int begin = s * g.len, end = min(vocab, begin + g.len);
  float v = -INFINITY;
  int at = INT_MAX;
  for (int j = begin + threadIdx.x; j < end; j += blockDim.x) better(v, at, row[j], j);
  for (int o = 16; o > 0; o >>= 1)
    better(v, at, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, at, o));
  __shared__ float pv[kSliceThreads / 32];
  __shared__ int pi[kSliceThreads / 32];
  if (threadIdx.x % 32 == 0) pv[threadIdx.x / 32] = v, pi[threadIdx.x / 32] = at;
  // The row's histogram starts empty (slice_histogram runs after this kernel).
  for (int b = s * blockDim.x + threadIdx.x; b < kBins; b += g.slices * blockDim.x) {
    sc.hist_count[r * kBins + b] = 0;
    sc.hist_mass[r * kBins + b] = 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kSliceThreads / 32; ++w) better(v, at, pv[w], pi[w]);
    sc.slice_max[r * g.slices + s] = v;
    sc.slice_arg[r * g.slices + s] = at;
  }
}

// --- 2. histogram of q ---

__global__ void slice_histogram_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc) {
  const int r = blockIdx.y, s = blockIdx.x;
  const SampleRow p = picks[r];
  if (row_mode(p, vocab) != kCut || cut_by_maxima(p, vocab, g.slices)) return;
  __shared__ uint32_t count[kBins];
  __shared__ unsigned long long mass[kBins];
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) count[b] = 0, mass[b] = 0;
  const RowView rv =
      row_view(logits + static_cast<int64_t>(r) * vocab, vocab, p, sc.slice_max + r * g.slices, g.slices);
  const int begin = s * g.len, end = min(vocab, begin + g.len);
  for (int j = begin + threadIdx.x; j < end; j += blockDim.x) {
    const float l = rv.logits[j];
    const int b = rv.bin(l);
    atomicAdd(&count[b], 1u);
    atomicAdd(&mass[b], fixed_mass(rv.q(l)));
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += blockDim.x)
    if (count[b]) {
      atomicAdd(&sc.hist_count[r * kBins + b], count[b]);
      atomicAdd(&sc.hist_mass[r * kBins + b], mass[b]);
    }
}

// The last bin a cut can reach: the first (from q = 1 down) where the top-k
// count is met, or, without top-k, the top-p share of all the mass (with a
// margin for the fixed-point and float sums). Called by one full warp.
__device__ int boundary_bin(const SampleRow& p, int vocab, const uint32_t* count, const unsigned long long* mass) {
  constexpr int kPer = kBins / 32;
  const int lane = threadIdx.x % 32;
  uint32_t c = 0;
  unsigned long long m = 0;
  for (int b = lane * kPer; b < (lane + 1) * kPer; ++b) c += count[b], m += mass[b];
  for (int o = 1; o < 32; o <<= 1) {  // inclusive scans
    const uint32_t c2 = __shfl_up_sync(0xffffffffu, c, o);
    const unsigned long long m2 = __shfl_up_sync(0xffffffffu, m, o);
    if (lane >= o) c += c2, m += m2;
  }
  const bool by_count = p.top_k > 0 && p.top_k < vocab;
  const unsigned long long total = __shfl_sync(0xffffffffu, m, 31);
  const unsigned long long need =
      by_count ? static_cast<unsigned long long>(p.top_k)
               : static_cast<unsigned long long>(ceil(static_cast<double>(p.top_p) * static_cast<double>(total))) +
                     static_cast<unsigned long long>(vocab) + (total >> 14);
  const unsigned long long have = by_count ? c : m;
  const unsigned ballot = __ballot_sync(0xffffffffu, have >= need);
  if (ballot == 0) return kBins - 1;
  const int first = __ffs(ballot) - 1;  // the lane whose bins meet it
  int bin = kBins - 1;
  if (lane == first) {
    unsigned long long acc = by_count ? c : m;
    for (int b = (lane + 1) * kPer - 1; b >= lane * kPer; --b) {  // back off to the first bin that meets it
      const unsigned long long before = acc - (by_count ? count[b] : mass[b]);
      if (before < need) {
        bin = b;
        break;
      }
      acc = before;
    }
  }
  return __shfl_sync(0xffffffffu, bin, first);
}

// --- 3. candidates, or surviving masses ---

__global__ void slice_select_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc) {
  const int r = blockIdx.y, s = blockIdx.x;
  const SampleRow p = picks[r];
  const int mode = row_mode(p, vocab);
  if (mode == kGreedy) return;
  const RowView rv =
      row_view(logits + static_cast<int64_t>(r) * vocab, vocab, p, sc.slice_max + r * g.slices, g.slices);
  const int begin = s * g.len, end = min(vocab, begin + g.len);
  if (mode == kDraw) {
    const float floor = fmaxf(0.0f, p.min_p);
    float m = 0.0f;
    for (int j = begin + threadIdx.x; j < end; j += blockDim.x) {
      const float q = rv.q_at(j);
      if (q >= floor) m += q;
    }
    m = block_sum(m);
    if (threadIdx.x == 0) sc.slice_mass[r * g.slices + s] = m;
    return;
  }
  __shared__ int last_bin;
  __shared__ float least;  // the k-th largest slice maximum
  const bool by_maxima = cut_by_maxima(p, vocab, g.slices);
  if (by_maxima) {
    const float v = kth_largest(sc.slice_max + r * g.slices, g.slices, p.top_k - 1);
    if (threadIdx.x == 0) least = v;
  } else if (threadIdx.x < 32) {
    const int b = boundary_bin(p, vocab, sc.hist_count + r * kBins, sc.hist_mass + r * kBins);
    if (threadIdx.x == 0) last_bin = b;
  }
  __syncthreads();
  const int bmax = by_maxima ? kBins : last_bin;
  const float lmin = by_maxima ? least : -INFINITY;
  const int kept = keep_in_order(rv.logits, begin, end, sc.cands + (static_cast<int64_t>(r) * g.slices + s) * cap(g),
                                 cap(g), [&](float l) { return by_maxima ? l >= lmin : rv.bin(l) <= bmax; });
  if (threadIdx.x == 0) sc.cand_count[r * g.slices + s] = kept;
}

// --- 4. the pick ---

// The draw: the first of n items (in vocabulary order) whose cumulative q,
// over those with q >= floor, passes u times their total; the last survivor
// if rounding puts it past the end; -1 if none survives. q(i) and id(i)
// give an item's q and token.
template <class Q, class Id>
__device__ int draw(int n, float floor, float u, const Q& q, const Id& id) {
  __shared__ int chosen, last;
  if (threadIdx.x == 0) chosen = -1, last = -1;
  const int per = (n + blockDim.x - 1) / blockDim.x;
  const int begin = min(n, static_cast<int>(threadIdx.x) * per), end = min(n, begin + per);
  float mine = 0.0f;
  int my_last = -1;
  for (int i = begin; i < end; ++i) {
    const float x = q(i);
    if (x >= floor) mine += x, my_last = i;
  }
  float total;
  const float start = block_exclusive_scan(mine, total);
  const float target = u * total;
  if (my_last >= 0) atomicMax(&last, my_last);
  if (mine > 0.0f && target >= start && target < start + mine) {
    float cum = start;
    int pick = -1;
    for (int i = begin; i < end; ++i) {
      const float x = q(i);
      if (x < floor) continue;
      pick = i;
      cum += x;
      if (cum > target) break;
    }
    atomicMax(&chosen, pick);
  }
  __syncthreads();
  const int i = chosen >= 0 ? chosen : last;
  return i >= 0 ? id(i) : -1;
}

// The cuts by bisection on q over the whole row: the fallback for rows with
// too many candidates.
__device__ void above(const RowView& r, float t, float& count, float& mass) {
  float c = 0.0f, m = 0.0f;
  for (int j = threadIdx.x; j < r.vocab; j += blockDim.x) {
    const float q = r.q_at(j);
    if (q >= t) c += 1.0f, m += q;
  }
  count = block_sum(c);
  mass = block_sum(m);
}

__device__ float bisect_floor(const RowView& r, const SampleRow& p) {
  float count, mass, floor = 0.0f;
  if (p.top_k > 0 && p.top_k < r.vocab) {  // the largest t that still keeps k tokens
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < kBisections; ++i) {
      const float mid = 0.5f * (lo + hi);
      above(r, mid, count, mass);
      (count >= p.top_k ? lo : hi) = mid;
    }
    floor = lo;
  }
  if (p.top_p < 1.0f) {  // the largest t whose survivors hold top_p of the mass kept so far
    float kept;
    above(r, floor, count, kept);
    float lo = floor, hi = 1.0f;
    for (int i = 0; i < kBisections; ++i) {
      const float mid = 0.5f * (lo + hi);
      above(r, mid, count, mass);
      (mass >= p.top_p * kept ? lo : hi) = mid;
    }
    floor = lo;
  }
  return fmaxf(floor, p.min_p);
}

// The cuts exactly as pick_token takes them, over the candidates' q sorted
// in descending order (keys, n of them, padded to a power of two with -1);
// `all_mass` is the whole row's mass (for top-p without top-k).
__device__ float sorted_floor(float* keys, int n, const SampleRow& p, int vocab, float all_mass) {
  int size = 1;
  while (size < n) size <<= 1;
  for (int i = n + threadIdx.x; i < size; i += blockDim.x) keys[i] = -1.0f;
  __syncthreads();
  for (int k = 2; k <= size; k <<= 1)  // bitonic sort, descending
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += blockDim.x) {
        const int o = i ^ j;
        if (o > i) {
          const float a = keys[i], b = keys[o];
          if ((i & k) == 0 ? a < b : a > b) keys[i] = b, keys[o] = a;
        }
      }
      __syncthreads();
    }
  const bool by_count = p.top_k > 0 && p.top_k < vocab;
  float floor = by_count ? keys[min(p.top_k, n) - 1] : 0.0f;
  if (p.top_p < 1.0f) {
    // The survivors so far are a prefix of keys: the first of them where the
    // running mass reaches top_p of theirs (of the row's, without top-k).
    __shared__ int first;
    if (threadIdx.x == 0) first = INT_MAX;
    const int per = (n + blockDim.x - 1) / blockDim.x;
    const int begin = min(n, static_cast<int>(threadIdx.x) * per), end = min(n, begin + per);
    float mine = 0.0f;
    for (int i = begin; i < end; ++i)
      if (keys[i] >= floor) mine += keys[i];
    float mass;
    const float start = block_exclusive_scan(mine, mass);
    const float target = p.top_p * (by_count ? mass : all_mass);
    if (mine > 0.0f && start + mine >= target) {
      float cum = start;
      for (int i = begin; i < end; ++i) {
        if (keys[i] < floor) break;
        cum += keys[i];
        if (cum >= target) {
          atomicMin(&first, i);
          break;
        }
      }
    }
    __syncthreads();
    floor = fmaxf(floor, first < n ? keys[first] : keys[n - 1]);
  }
  return fmaxf(floor, p.min_p);
}

// The row's first index holding its maximum (as std::max_element).
__device__ int first_best(const float* slice_max, const int32_t* slice_arg, int slices, float max) {
  __shared__ int first;
  if (threadIdx.x == 0) first = INT_MAX;
  __syncthreads();
  for (int s = threadIdx.x; s < slices; s += blockDim.x)
    if (slice_max[s] == max && slice_arg[s] != INT_MAX) atomicMin(&first, s);
  __syncthreads();
  return first == INT_MAX ? 0 : slice_arg[first];
}

// A draw without cuts: its slice from the slices' surviving masses, then
// the walk through that slice alone.
__device__ int draw_by_slices(const RowView& rv, const SampleRow& p, Geometry g, const float* slice_mass) {
  __shared__ int at, last;
  __shared__ float at_before;
  if (threadIdx.x == 0) at = -1, last = -1;
  const float m = threadIdx.x < g.slices ? slice_mass[threadIdx.x] : 0.0f;  // slices <= blockDim
  float total;
  const float before = block_exclusive_scan(m, total);
  const float target = p.uniform * total;
  if (m > 0.0f) atomicMax(&last, threadIdx.x);
  if (m > 0.0f && target >= before && target < before + m) atomicMax(&at, threadIdx.x);
  __syncthreads();
  if (at < 0 && last < 0) return -1;
  const bool past = at < 0;  // rounding put the target past the last slice
  const int s = past ? last : at;
  if (threadIdx.x == s) at_before = before;
  __syncthreads();
  const int begin = s * g.len, n = min(rv.vocab, begin + g.len) - begin;
  const float u = past ? 1.0f : fminf((target - at_before) / slice_mass[s], 1.0f);
  return draw(
      n, fmaxf(0.0f, p.min_p), u, [&](int i) { return rv.q_at(begin + i); }, [&](int i) { return begin + i; });
}

__global__ void __launch_bounds__(kPickThreads)
    pick_kernel(const float* logits, int vocab, const SampleRow* picks, Geometry g, Scratch sc, int32_t* out) {
  const int r = blockIdx.x;
  const SampleRow p = picks[r];
  const int mode = row_mode(p, vocab);
  const float* slice_max = sc.slice_max + r * g.slices;
  const RowView rv = row_view(logits + static_cast<int64_t>(r) * vocab, vocab, p, slice_max, g.slices);
  int pick = first_best(slice_max, sc.slice_arg + r * g.slices, g.slices, rv.max);
  if (mode == kDraw) {
    const int j = draw_by_slices(rv, p, g, sc.slice_mass + r * g.slices);
    if (j >= 0) pick = j;
  } else if (mode == kCut) {
    __shared__ int offset[kMaxSlices];
    __shared__ float qs[kMaxCands], keys[kMaxCands];
    __shared__ int32_t ids[kMaxCands];
    const int count = threadIdx.x < g.slices ? sc.cand_count[r * g.slices + threadIdx.x] : 0;
    int n;
    const int start = block_exclusive_scan(count, n);
    if (threadIdx.x < g.slices) offset[threadIdx.x] = start;
    // The row's mass, for top-p without top-k (the histogram's fixed-point sums).
    unsigned long long m = 0;
    for (int b = threadIdx.x; b < kBins; b += blockDim.x) m += sc.hist_mass[r * kBins + b];
    unsigned long long all;
    block_exclusive_scan(m, all);
    const float all_mass = static_cast<float>(static_cast<double>(all) * 0x1p-32);
    if (n == 0) {
      // Only a row without a usable maximum (NaN) keeps no candidate: the greedy fallback.
    } else if (n <= kMaxCands) {
      const int cap = cand_capacity(g.len);
      for (int s = 0; s < g.slices; ++s) {
        const Cand* c = sc.cands + (static_cast<int64_t>(r) * g.slices + s) * cap;
        const int o = offset[s], k = (s + 1 < g.slices ? offset[s + 1] : n) - o;
        for (int i = threadIdx.x; i < k; i += blockDim.x) {
          const float q = rv.q(c[i].logit);
          qs[o + i] = q;
          keys[o + i] = q;
          ids[o + i] = c[i].id;
        }
      }
      __syncthreads();
      const float floor = sorted_floor(keys, n, p, vocab, all_mass);
      const int j = draw(
          n, floor, p.uniform, [&](int i) { return qs[i]; }, [&](int i) { return ids[i]; });
      if (j >= 0) pick = j;
    } else {
      const float floor = bisect_floor(rv, p);
      const int j = draw(
          vocab, floor, p.uniform, [&](int i) { return rv.q_at(i); }, [](int i) { return i; });
      if (j >= 0) pick = j;
    }
  }
  if (threadIdx.x == 0) out[r] = pick;
}

__global__ void feed_edits_kernel(const SampleRow* picks, int rows, const int32_t* prev_ids, EditRow* edits,
                                  int sorted) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  const SampleRow p = picks[r];
  if (p.fed < 0 || p.extra < 0) return;
  const int32_t t = prev_ids[p.fed];
  const int i = find_edit(edits, sorted, r, t);
  EditRow* e = edits + p.extra;
  if (i < sorted && edits[i].row == r && edits[i].token == t)
    e = edits + i;
  else
    *e = EditRow{r, t, 0.0f, 1.0f, 0.0f, 0, 0};
  // The host's rule for a token now in the output count + 1 times.
  if (p.repetition != 1.0f) e->repetition = p.repetition;
  if (p.frequency != 0.0f || p.presence != 0.0f) {
    e->count += 1;
    e->subtract = __fmaf_rn(p.frequency, static_cast<float>(e->count), p.presence);
  }
}

__global__ void edit_kernel(float* logits, int vocab, const EditRow* edits, int n, float* raw) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const EditRow e = edits[i];
  if (e.token < 0 || e.token >= vocab) return;
  float* at = logits + static_cast<int64_t>(e.row) * vocab + e.token;
  raw[i] = *at;
  // The host's operations in the host's order (IEEE division, no fused
  // multiply-add), so both give the same bits.
  float v = __fadd_rn(*at, e.bias);
  if (e.mask) v = -INFINITY;
  if (e.repetition != 1.0f) v = v > 0.0f ? __fdiv_rn(v, e.repetition) : __fmul_rn(v, e.repetition);
  *at = __fsub_rn(v, e.subtract);
}

}  // namespace

void feed_edits(const SampleRow* picks, int rows, const int32_t* prev_ids, EditRow* edits, int sorted, cudaStream_t s) {
  if (rows == 0) return;
  feed_edits_kernel<<<(rows + 127) / 128, 128, 0, s>>>(picks, rows, prev_ids, edits, sorted);
}

void edit_logits(float* logits, int vocab, const EditRow* edits, int n, float* raw, cudaStream_t s) {
  if (n == 0) return;
  edit_kernel<<<(n + 255) / 256, 256, 0, s>>>(logits, vocab, edits, n, raw);
}

size_t sample_scratch_bytes(int vocab) { return scratch_bytes(vocab); }

void sample(const float* logits, int rows, int vocab, const SampleRow* picks, int32_t* out, void* scratch,
            cudaStream_t s) {
  const Geometry g = geometry(vocab);
  const Scratch sc = carve(scratch, vocab);
  for_each_chunk(logits, rows, vocab, g, [&](int r0, int n, const float* l, dim3 grid) {
    slice_stats_kernel<<<grid, kSliceThreads, 0, s>>>(l, vocab, g, sc);
    slice_histogram_kernel<<<grid, kSliceThreads, 0, s>>>(l, vocab, picks + r0, g, sc);
    slice_select_kernel<<<grid, kSliceThreads, 0, s>>>(l, vocab, picks + r0, g, sc);
    pick_kernel<<<n, kPickThreads, 0, s>>>(l, vocab, picks + r0, g, sc, out + r0);
  });
}

}  // namespace nativelm::cuda
