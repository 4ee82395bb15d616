// Causal attention over the paged KV pools, one kernel for decode and
// prefill rows alike. A block serves one query row and up to kMaxHeads query
// heads that share a kv head (GQA: each K/V row is read once for all of
// them), over one chunk of the visible positions (split-KV, "flash
// decoding"); its warps stream positions with an online softmax and are
// merged in shared memory. When a row used more than one chunk, a second
// kernel merges the chunks' partial results.
#include <cmath>

#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeads = 8;
constexpr int kMaxHeadDim = 256;
constexpr int kMinChunk = 64;  // fewer positions per split cost more to merge than they save

struct RowRange {
  int visible, chunk, used;
};

__device__ __forceinline__ RowRange row_range(const AttentionArgs& a, int row, const SeqInfo& si) {
  RowRange r;
  r.visible = si.kv_len - si.q_len + (row - si.q_begin) + 1;
  r.chunk = max((r.visible + a.splits - 1) / a.splits, kMinChunk);
  r.used = (r.visible + r.chunk - 1) / r.chunk;
  return r;
}

// The lane's EPL consecutive elements of a head_dim row.
template <class T, int EPL>
__device__ __forceinline__ void load_part(const T* row, int lane, int hd, float (&out)[EPL]) {
  const int d0 = lane * EPL;
  if (d0 + EPL <= hd && (sizeof(T) * EPL) % 8 == 0) {
    // 8- or 16-byte loads; rows start at multiples of head_dim elements.
    T tmp[EPL];
    if constexpr (sizeof(T) * EPL == 8) {
      *reinterpret_cast<uint2*>(tmp) = *reinterpret_cast<const uint2*>(row + d0);
    } else {
#pragma unroll
      for (int i = 0; i < static_cast<int>(sizeof(T) * EPL / 16); ++i)
        reinterpret_cast<uint4*>(tmp)[i] = reinterpret_cast<const uint4*>(row + d0)[i];
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = to_f(tmp[e]);
  } else {
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = d0 + e < hd ? to_f(row[d0 + e]) : 0.0f;
  }
}

template <class T, int EPL>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a, int hpb) {
  __shared__ float sm_m[kWarps][kMaxHeads], sm_l[kWarps][kMaxHeads];
  __shared__ float sm_acc[kWarps][kMaxHeads][kMaxHeadDim];
  const int row = blockIdx.x, h0 = blockIdx.y * hpb, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const SeqInfo si = a.seqs[a.row_seq[row]];
  const RowRange rr = row_range(a, row, si);
  if (split >= rr.used) return;
  const int p0 = split * rr.chunk, p1 = min(rr.visible, p0 + rr.chunk);
  const int hd = a.head_dim, kv_dim = a.kv_heads * hd;
  const int kvh = h0 / (a.heads / a.kv_heads);

  float q[kMaxHeads][EPL], acc[kMaxHeads][EPL], m[kMaxHeads], l[kMaxHeads];
  const T* qrow = static_cast<const T*>(a.q) + static_cast<int64_t>(row) * a.heads * hd;
#pragma unroll
  for (int g = 0; g < kMaxHeads; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[g][e] = 0.0f;
    if (g < hpb) {
      load_part<T, EPL>(qrow + (h0 + g) * hd, lane, hd, q[g]);
#pragma unroll
      for (int e = 0; e < EPL; ++e) q[g][e] *= a.scale;
    }
  }
  const T* k_base = static_cast<const T*>(a.k_pool) + kvh * hd;
  const T* v_base = static_cast<const T*>(a.v_pool) + kvh * hd;
  for (int p = p0 + warp; p < p1; p += kWarps) {
    const int64_t slot = static_cast<int64_t>(a.pages[si.page_off + p / a.page_size]) * a.page_size +
                         p % a.page_size;
    float k[EPL], v[EPL];
    load_part<T, EPL>(k_base + slot * kv_dim, lane, hd, k);
    load_part<T, EPL>(v_base + slot * kv_dim, lane, hd, v);
#pragma unroll
    for (int g = 0; g < kMaxHeads; ++g) {
      if (g >= hpb) break;
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < EPL; ++e) s += q[g][e] * k[e];
      s = warp_sum(s);
      const float m_new = fmaxf(m[g], s);
      const float corr = __expf(m[g] - m_new), pe = __expf(s - m_new);
      l[g] = l[g] * corr + pe;
#pragma unroll
      for (int e = 0; e < EPL; ++e) acc[g][e] = acc[g][e] * corr + pe * v[e];
      m[g] = m_new;
    }
  }
#pragma unroll
  for (int g = 0; g < kMaxHeads; ++g) {
    if (g >= hpb) break;
    if (lane == 0) {
      sm_m[warp][g] = m[g];
      sm_l[warp][g] = l[g];
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e)
      if (lane * EPL + e < hd) sm_acc[warp][g][lane * EPL + e] = acc[g][e];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < hpb * hd; idx += blockDim.x) {
    const int g = idx / hd, d = idx % hd;
    float mx = -INFINITY;
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w][g]);
    float sum = 0.0f, val = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float f = sm_m[w][g] == -INFINITY ? 0.0f : __expf(sm_m[w][g] - mx);
      sum += sm_l[w][g] * f;
      val += sm_acc[w][g][d] * f;
    }
    const int h = h0 + g;
    if (rr.used == 1) {
      static_cast<T*>(a.out)[static_cast<int64_t>(row) * a.heads * hd + h * hd + d] = from_f<T>(val / sum);
    } else {
      float* part = a.partial + ((static_cast<int64_t>(row) * a.heads + h) * a.splits + split) * (hd + 2);
      if (d == 0) {
        part[0] = mx;
        part[1] = sum;
      }
      part[2 + d] = val;
    }
  }
}

template <class T>
__global__ void merge_kernel(AttentionArgs a) {
  const int row = blockIdx.x, h = blockIdx.y, hd = a.head_dim;
  const RowRange rr = row_range(a, row, a.seqs[a.row_seq[row]]);
  if (rr.used == 1) return;
  const float* part = a.partial + (static_cast<int64_t>(row) * a.heads + h) * a.splits * (hd + 2);
  float mx = -INFINITY;
  for (int s = 0; s < rr.used; ++s) mx = fmaxf(mx, part[s * (hd + 2)]);
  float sum = 0.0f;
  for (int s = 0; s < rr.used; ++s) sum += part[s * (hd + 2) + 1] * __expf(part[s * (hd + 2)] - mx);
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float val = 0.0f;
    for (int s = 0; s < rr.used; ++s) val += part[s * (hd + 2) + 2 + d] * __expf(part[s * (hd + 2)] - mx);
    static_cast<T*>(a.out)[static_cast<int64_t>(row) * a.heads * hd + h * hd + d] = from_f<T>(val / sum);
  }
}

template <class T, int EPL>
void launch(const AttentionArgs& a, int hpb, cudaStream_t s) {
  const dim3 grid(a.rows, a.heads / hpb, a.splits);
  attention_kernel<T, EPL><<<grid, kWarps * 32, 0, s>>>(a, hpb);
  if (a.splits > 1) merge_kernel<T><<<dim3(a.rows, a.heads), 64, 0, s>>>(a);
}

}  // namespace

int attention_heads_per_block(int heads, int kv_heads) {
  const int group = heads / kv_heads;
  int hpb = group < kMaxHeads ? group : kMaxHeads;
  while (group % hpb != 0) --hpb;
  return hpb;
}

void attention(Ty t, const AttentionArgs& a, cudaStream_t s) {
  if (a.rows == 0) return;
  const int hpb = attention_heads_per_block(a.heads, a.kv_heads);
  NATIVELM_DISPATCH(t, {
    if (a.head_dim <= 32) {
      launch<T, 1>(a, hpb, s);
    } else if (a.head_dim <= 64) {
      launch<T, 2>(a, hpb, s);
    } else if (a.head_dim <= 128) {
      launch<T, 4>(a, hpb, s);
    } else {
      launch<T, 8>(a, hpb, s);
    }
  });
}

}  // namespace nativelm::cuda
