// Sampling on the device (temperature, top-k, top-p, min-p): one block per
// row. The cuts are found as thresholds on q = exp((logit - max) / T) by
// bisection (a pass over the row each), never by sorting the vocabulary;
// the draw walks the survivors' cumulative mass in vocabulary order.
#include <cfloat>

#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kThreads = 1024;
constexpr int kBisections = 24;

__device__ float block_max(float v) {
  __shared__ float part[32];
  __shared__ float total;
  v = warp_max(v);
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x < 32) {
    float x = threadIdx.x < blockDim.x / 32 ? part[threadIdx.x] : -FLT_MAX;
    x = warp_max(x);
    if (threadIdx.x == 0) total = x;
  }
  __syncthreads();
  return total;
}

struct RowView {
  const float* logits;
  int vocab;
  float max, inv_t;
  __device__ float q(int j) const { return __expf((logits[j] - max) * inv_t); }
};

// Count and mass of the tokens with q >= t.
__device__ void above(const RowView& r, float t, float& count, float& mass) {
  float c = 0.0f, m = 0.0f;
  for (int j = threadIdx.x; j < r.vocab; j += blockDim.x) {
    const float q = r.q(j);
    if (q >= t) {
      c += 1.0f;
      m += q;
    }
  }
  count = block_sum(c);
  mass = block_sum(m);
}

__global__ void sample_kernel(const float* logits, int vocab, const SampleRow* rows, int32_t* out) {
  const SampleRow p = rows[blockIdx.x];
  RowView r{logits + static_cast<int64_t>(blockIdx.x) * vocab, vocab, 0.0f, 0.0f};
  float mx = -FLT_MAX;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) mx = fmaxf(mx, r.logits[j]);
  r.max = block_max(mx);
  if (p.temperature <= 1e-5f || p.top_k == 1) {
    // Greedy: the first index holding the maximum.
    __shared__ int first;
    if (threadIdx.x == 0) first = vocab;
    __syncthreads();
    for (int j = threadIdx.x; j < vocab; j += blockDim.x)
      if (r.logits[j] == r.max) atomicMin(&first, j);
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = first < vocab ? first : 0;
    return;
  }
  r.inv_t = 1.0f / p.temperature;
  float count, mass;
  // top-k: the largest t that still keeps k tokens.
  float floor = 0.0f;
  if (p.top_k > 0 && p.top_k < vocab) {
    float lo = 0.0f, hi = 1.0f;
    for (int i = 0; i < kBisections; ++i) {
      const float mid = 0.5f * (lo + hi);
      above(r, mid, count, mass);
      (count >= p.top_k ? lo : hi) = mid;
    }
    floor = lo;
  }
  // top-p: the largest t whose survivors still hold top_p of the top-k mass.
  if (p.top_p < 1.0f) {
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
  floor = fmaxf(floor, p.min_p);  // q of the most likely token is 1
  // The draw: each thread owns a contiguous slice; an exclusive scan of the
  // slices' masses finds the slice, then its thread walks it.
  __shared__ float scan[kThreads];
  __shared__ int chosen;
  const int per = (vocab + blockDim.x - 1) / blockDim.x;
  const int begin = threadIdx.x * per, end = min(vocab, begin + per);
  float mine = 0.0f;
  for (int j = begin; j < end; ++j) {
    const float q = r.q(j);
    if (q >= floor) mine += q;
  }
  scan[threadIdx.x] = mine;
  if (threadIdx.x == 0) chosen = -1;
  __syncthreads();
  for (int off = 1; off < static_cast<int>(blockDim.x); off <<= 1) {
    const float v = threadIdx.x >= off ? scan[threadIdx.x - off] : 0.0f;
    __syncthreads();
    scan[threadIdx.x] += v;
    __syncthreads();
  }
  const float total = scan[blockDim.x - 1];
  const float target = p.uniform * total;
  const float start = scan[threadIdx.x] - mine;
  if (mine > 0.0f && target >= start && target < scan[threadIdx.x]) {
    float cum = start;
    int pick = -1;
    for (int j = begin; j < end; ++j) {
      const float q = r.q(j);
      if (q < floor) continue;
      pick = j;
      cum += q;
      if (cum > target) break;
    }
    atomicMax(&chosen, pick);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int pick = chosen;
    if (pick < 0) {  // rounding put the target past the last slice: take the last survivor
      for (int j = vocab - 1; j >= 0 && pick < 0; --j)
        if (r.q(j) >= floor) pick = j;
    }
    out[blockIdx.x] = pick < 0 ? 0 : pick;
  }
}

__global__ void edit_kernel(float* logits, int vocab, const EditRow* edits, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const EditRow e = edits[i];
  if (e.token < 0 || e.token >= vocab) return;
  float* at = logits + static_cast<int64_t>(e.row) * vocab + e.token;
  // The host's operations in the host's order (IEEE division, no fused
  // multiply-add), so both give the same bits.
  float v = __fadd_rn(*at, e.bias);
  if (e.mask) v = -INFINITY;
  if (e.repetition != 1.0f) v = v > 0.0f ? __fdiv_rn(v, e.repetition) : __fmul_rn(v, e.repetition);
  *at = __fsub_rn(v, e.subtract);
}

}  // namespace

void edit_logits(float* logits, int vocab, const EditRow* edits, int n, cudaStream_t s) {
  if (n == 0) return;
  edit_kernel<<<(n + 255) / 256, 256, 0, s>>>(logits, vocab, edits, n);
}

void sample(const float* logits, int rows, int vocab, const SampleRow* picks, int32_t* out, cudaStream_t s) {
  if (rows == 0) return;
  sample_kernel<<<rows, kThreads, 0, s>>>(logits, vocab, picks, out);
}

}  // namespace nativelm::cuda
