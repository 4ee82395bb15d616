// Causal attention over the paged KV pools. Rows of long prompts go to a
// tensor-core tile kernel, the others to the lanes kernel (16-bit K/V, head
// size 64 or 128: lanes take positions) or else to the general kernel.
// Both of those serve one query row and up to kMaxHeads query heads that
// share a kv head (GQA: each K/V row is read once for all of them) per
// block, over one chunk of the visible positions (split-KV, "flash
// decoding"); the chunks of a row are merged by the last of its blocks.
#include <cmath>
#include <type_traits>

#include <mma.h>

#include "backend/cuda/rope.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kMaxHeads = 8;
constexpr int kMaxHeadDim = 256;
constexpr int kMinChunk = 32;  // fewer positions per split cost more to merge than they save

struct RowRange {
  int visible, chunk, used;
};

__device__ __forceinline__ RowRange row_range(const AttentionArgs& a, int row, const SeqInfo& si,
                                              int min_chunk = kMinChunk) {
  RowRange r;
  r.visible = si.kv_len - si.q_len + (row - si.q_begin) + 1;
  r.chunk = max((r.visible + a.splits - 1) / a.splits, min_chunk);
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

// The end of a (row, head group, chunk) block: its warps' online-softmax
// states (m, l and acc over the lane's EPL consecutive elements of each
// head) merge in shared memory; a row split over several chunks writes its
// partial result, and the last of its blocks to finish merges them all (no
// second kernel). The counter goes back to 0 for the next step.
template <class T, int EPL, int H>
__device__ __forceinline__ void finish_chunk(const AttentionArgs& a, int row, int h0, int hpb, int split, int used,
                                             const float (&m)[H], const float (&l)[H], const float (&acc)[H][EPL]) {
  __shared__ float sm_m[kWarps][kMaxHeads], sm_l[kWarps][kMaxHeads];
  __shared__ float sm_acc[kWarps][kMaxHeads][kMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = a.head_dim;
#pragma unroll
  for (int g = 0; g < H; ++g) {
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
    if (used == 1) {
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
  if (used == 1) return;
  __shared__ int ticket;
  __shared__ float weight[32];
  __shared__ float total;
  __threadfence();
  __syncthreads();
  int* counter = a.counters + row * gridDim.y + blockIdx.y;
  if (threadIdx.x == 0) ticket = atomicAdd(counter, 1);
  __syncthreads();
  if (ticket != used - 1) return;
  __threadfence();
  for (int g = 0; g < hpb; ++g) {
    const int h = h0 + g;
    const float* part = a.partial + (static_cast<int64_t>(row) * a.heads + h) * a.splits * (hd + 2);
    if (warp == 0) {
      const int s = lane;  // splits <= 32
      const float m = s < used ? __ldcg(part + s * (hd + 2)) : -INFINITY;
      const float mx = warp_max(m);
      const float w = s < used ? __expf(m - mx) : 0.0f;
      const float sum = warp_sum(s < used ? __ldcg(part + s * (hd + 2) + 1) * w : 0.0f);
      weight[s] = w;
      if (s == 0) total = sum;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
      float val = 0.0f;
      for (int s0 = 0; s0 < used; s0 += 8) {  // eight loads in flight at a time
        float pv[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) pv[i] = s0 + i < used ? __ldcg(part + (s0 + i) * (hd + 2) + 2 + d) : 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) val += s0 + i < used ? pv[i] * weight[s0 + i] : 0.0f;
      }
      static_cast<T*>(a.out)[static_cast<int64_t>(row) * a.heads * hd + h * hd + d] = from_f<T>(val / total);
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) *counter = 0;
}

template <class T, int EPL>
__global__ void __launch_bounds__(kWarps * 32) attention_kernel(AttentionArgs a, int hpb) {
  const int row = blockIdx.x, h0 = blockIdx.y * hpb, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The step's metadata does not depend on the kernel before this one.
  const SeqInfo si = a.seqs[a.row_seq[row]];
  if (a.num_tiles > 0 && si.q_len >= kPrefillMinRows) return;  // the tensor-core kernel's
  const RowRange rr = row_range(a, row, si);
  if (split >= rr.used) return;
  const int p0 = split * rr.chunk, p1 = min(rr.visible, p0 + rr.chunk);
  const int hd = a.head_dim, kv_dim = a.kv_heads * hd;
  const int kvh = h0 / (a.heads / a.kv_heads);
  grid_dependency_wait();
  grid_dependency_trigger();

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
  // kAhead positions per warp and iteration: all their loads are in flight
  // before the first is used.
  constexpr int kAhead = 4;
  for (int p = p0 + warp; p < p1; p += kAhead * kWarps) {
    float k[kAhead][EPL], v[kAhead][EPL];
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      const int pu = min(p + u * kWarps, p1 - 1);
      const int64_t slot = static_cast<int64_t>(a.pages[si.page_off + pu / a.page_size]) * a.page_size +
                           pu % a.page_size;
      load_part<T, EPL>(k_base + slot * kv_dim, lane, hd, k[u]);
      load_part<T, EPL>(v_base + slot * kv_dim, lane, hd, v[u]);
    }
#pragma unroll
    for (int u = 0; u < kAhead; ++u) {
      if (p + u * kWarps >= p1) break;
#pragma unroll
      for (int g = 0; g < kMaxHeads; ++g) {
        if (g >= hpb) break;
        float sc = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) sc += q[g][e] * k[u][e];
        sc = warp_sum(sc);
        const float m_new = fmaxf(m[g], sc);
        const float corr = __expf(m[g] - m_new), pe = __expf(sc - m_new);
        l[g] = l[g] * corr + pe;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] = acc[g][e] * corr + pe * v[u][e];
        m[g] = m_new;
      }
    }
  }
  finish_chunk<T, EPL, kMaxHeads>(a, row, h0, hpb, split, rr.used, m, l, acc);
}

// Decode with 16-bit K/V and head_dim 64 or 128: lanes take positions. Each
// lane holds one position's whole K row and scores it against the block's
// q heads (from shared memory) with no shuffles; the warp's 32 positions
// then take one softmax step, and P V runs with each lane owning HD / 32
// output elements, the V rows' loads all in flight at once. The K/V rows
// cached by earlier steps are loaded before the kernel waits for q.
constexpr int kLaneChunk = kWarps * 32;

// qkv_prepare's work for a decode row inside the lanes kernel: warp g < hpb
// turns q head h0 + g into sq (rounded to T as the prepare kernel writes it,
// then scaled); where the chunk ends at the row's new position, the next two
// warps make its K (norm + rope) and V rows in shared memory, and the first
// block of the kv head also writes them to the pools for later steps.
template <class T, int HD>
__device__ __forceinline__ void prepare_in_block(const AttentionArgs& a, int row, int h0, int hpb, int kvh,
                                                 bool fresh_here, const Rotary& rot, float* sq, T* fresh_k,
                                                 T* fresh_v) {
  const QkvArgs& p = a.prep;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* src = static_cast<const T*>(p.qkv) + static_cast<int64_t>(row) * (a.heads + 2 * a.kv_heads) * HD;
  const T* q_norm = static_cast<const T*>(p.q_norm);
  const T* k_norm = static_cast<const T*>(p.k_norm);
  for (int job = warp; job < hpb + (fresh_here ? 2 : 0); job += kWarps) {
    if (job < hpb) {
      float* dst = sq + job * HD;
      norm_rope_head(src + (h0 + job) * HD, q_norm, p.eps, rot, HD,
                     [&](int j, float v) { dst[j] = round_to<T>(v) * a.scale; });
    } else if (job == hpb) {
      norm_rope_head(src + (a.heads + kvh) * HD, k_norm, p.eps, rot, HD,
                     [&](int j, float v) { fresh_k[j] = from_f<T>(v); });
    } else {
      const T* v = src + (a.heads + a.kv_heads + kvh) * HD;
      for (int j = lane; j < HD; j += 32) fresh_v[j] = v[j];
    }
  }
  if (!fresh_here || h0 != kvh * (a.heads / a.kv_heads)) return;
  __syncthreads();
  const int64_t at = static_cast<int64_t>(p.slots[row]) * a.kv_heads * HD + kvh * HD;
  for (int j = threadIdx.x; j < HD; j += blockDim.x) {
    static_cast<T*>(p.k_pool)[at + j] = fresh_k[j];
    static_cast<T*>(p.v_pool)[at + j] = fresh_v[j];
  }
}

template <class T, int HD, int HPB, bool kFused>
__global__ void __launch_bounds__(kWarps * 32) lanes_kernel(AttentionArgs a) {
  constexpr int hpb = HPB;
  constexpr int EPL = HD / 32, KC = HD * static_cast<int>(sizeof(T)) / 16;
  using VT = std::conditional_t<EPL * sizeof(T) == 8, uint2, uint32_t>;
  __shared__ __align__(16) float sq[HPB * HD];
  const int row = blockIdx.x, h0 = blockIdx.y * hpb, split = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const SeqInfo si = a.seqs[a.row_seq[row]];
  if (a.num_tiles > 0 && si.q_len >= kPrefillMinRows) return;  // the tensor-core kernel's
  const RowRange rr = row_range(a, row, si, kLaneChunk);
  if (split >= rr.used) return;
  const int p0 = split * rr.chunk, p1 = min(rr.visible, p0 + rr.chunk);
  const int kv_dim = a.kv_heads * HD, kvh = h0 / (a.heads / a.kv_heads);
  const int cached = si.kv_len - si.q_len;  // rows written before this step
  const T* k_base = static_cast<const T*>(a.k_pool) + kvh * HD;
  const T* v_base = static_cast<const T*>(a.v_pool) + kvh * HD + lane * EPL;
  // With a.prep (decode rows only) this kernel is also the prepare kernel:
  // the row's one new K/V row is made here (fresh_k/v) by the block whose
  // chunk ends at it, rather than read back from the pools.
  constexpr bool fused = kFused;
  const bool fresh_here = fused && p1 == rr.visible;
  __shared__ __align__(16) T fresh_k[HD], fresh_v[HD];
  uint4 kr[KC];
  VT vr[32];
  // Rows base .. base + 31 (clamped to the chunk); with fresh_only, just
  // those written by this step.
  const auto load = [&](int base, bool fresh_only) {
    const int p = min(base + lane, p1 - 1);
    const int slot = a.pages[si.page_off + p / a.page_size] * a.page_size + p % a.page_size;
    if (!fresh_only || p >= cached) {
      const uint4* kp = fused && p >= cached ? reinterpret_cast<const uint4*>(fresh_k)
                                             : reinterpret_cast<const uint4*>(k_base + static_cast<int64_t>(slot) * kv_dim);
#pragma unroll
      for (int c = 0; c < KC; ++c) kr[c] = kp[c];
    }
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const int sj = __shfl_sync(0xffffffffu, slot, j);
      const bool fresh = min(base + j, p1 - 1) >= cached;
      if (!fresh_only || fresh)
        vr[j] = fused && fresh ? *reinterpret_cast<const VT*>(fresh_v + lane * EPL)
                               : *reinterpret_cast<const VT*>(v_base + static_cast<int64_t>(sj) * kv_dim);
    }
  };
  int base = p0 + warp * 32;
  bool loaded = base < p1;
  if (loaded) load(base, false);
  Rotary rot;
  if constexpr (fused) rot = rotary(static_cast<float>(a.prep.positions[row]), a.prep.inv_freq, HD);
  grid_dependency_wait();
  grid_dependency_trigger();

  if constexpr (fused) {
    prepare_in_block<T, HD>(a, row, h0, hpb, kvh, fresh_here, rot, sq, fresh_k, fresh_v);
  } else {
    const T* qrow = static_cast<const T*>(a.q) + static_cast<int64_t>(row) * a.heads * HD + h0 * HD;
    for (int i = threadIdx.x; i < hpb * HD; i += blockDim.x) sq[i] = to_f(qrow[i]) * a.scale;
  }
  __syncthreads();
  float m[HPB], l[HPB], acc[HPB][EPL];
#pragma unroll
  for (int g = 0; g < HPB; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) acc[g][e] = 0.0f;
  }
  for (; base < p1; base += kLaneChunk) {
    if (!loaded) {
      load(base, false);
    } else if (min(base + 31, p1 - 1) >= cached) {
      load(base, true);
    }
    loaded = false;
    const bool valid = base + lane < p1;
    float pg[HPB];
#pragma unroll
    for (int g = 0; g < HPB; ++g) {
      if (g >= hpb) break;
      const float4* qg = reinterpret_cast<const float4*>(sq + g * HD);
      float sc = 0.0f;
#pragma unroll
      for (int c = 0; c < KC; ++c) {
        const T* kt = reinterpret_cast<const T*>(&kr[c]);
        const float4 qa = qg[2 * c], qb = qg[2 * c + 1];
        sc += qa.x * to_f(kt[0]) + qa.y * to_f(kt[1]) + qa.z * to_f(kt[2]) + qa.w * to_f(kt[3]) +
              qb.x * to_f(kt[4]) + qb.y * to_f(kt[5]) + qb.z * to_f(kt[6]) + qb.w * to_f(kt[7]);
      }
      sc = valid ? sc : -INFINITY;
      const float m_new = fmaxf(m[g], warp_max(sc));
      const float corr = __expf(m[g] - m_new);
      pg[g] = valid ? __expf(sc - m_new) : 0.0f;
      l[g] = l[g] * corr + warp_sum(pg[g]);
#pragma unroll
      for (int e = 0; e < EPL; ++e) acc[g][e] *= corr;
      m[g] = m_new;
    }
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const T* vt = reinterpret_cast<const T*>(&vr[j]);
      float vf[EPL];
#pragma unroll
      for (int e = 0; e < EPL; ++e) vf[e] = to_f(vt[e]);
#pragma unroll
      for (int g = 0; g < HPB; ++g) {
        if (g >= hpb) break;
        const float pj = __shfl_sync(0xffffffffu, pg[g], j);
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[g][e] += pj * vf[e];
      }
    }
  }
  finish_chunk<T, EPL, HPB>(a, row, h0, hpb, split, rr.used, m, l, acc);
}

// Prefill: a block takes kPrefillTile query rows of one sequence and one
// head; its 4 warps own 16 rows each. K/V tiles of 64 positions are staged
// in shared memory once for all 64 rows; S = Q K^T and O += P V run on tensor
// cores (WMMA, f32 accumulation), the online softmax on the f32 S in shared
// memory.
namespace wmma = nvcuda::wmma;
constexpr int kTileWarps = 4;

// Row strides padded by 16 bytes so that tensor-core tile loads and the
// softmax's row walks do not pile onto the same shared-memory banks.
template <int HD>
constexpr int kQkvLd = HD + 8;             // 16-bit elements
constexpr int kSLd = kPrefillTile + 4;     // f32
constexpr int kPLd = kPrefillTile + 8;     // 16-bit
template <int HD>
constexpr int kOLd = HD + 4;               // f32

template <int HD>
constexpr size_t prefill_smem_bytes() {
  return 3 * kPrefillTile * kQkvLd<HD> * 2                    // q, k, v tiles
         + kTileWarps * 16 * (kSLd * 4 + kPLd * 2)            // S (f32) and P per warp
         + kTileWarps * 16 * kOLd<HD> * 4                     // O (f32) per warp
         + 3 * kPrefillTile * 4;                              // m, l, correction per row
}

// Stages kPrefillTile rows (query rows, or K and V rows through the page
// table) in shared memory. Every load is issued before the first store:
// the page lookups and row reads would otherwise run one after another.
template <class T, int HD>
__device__ __forceinline__ void load_q(T* dst, const AttentionArgs& a, const SeqInfo& si, int first, int count,
                                       int col) {
  constexpr int kChunks = HD * sizeof(T) / 16, kIters = kPrefillTile * kChunks / (kTileWarps * 32);
  uint4 buf[kIters];
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int idx = threadIdx.x + i * kTileWarps * 32, r = idx / kChunks, c = idx % kChunks;
    const T* src = static_cast<const T*>(a.q) + static_cast<int64_t>(si.q_begin + first + r) * a.heads * HD + col;
    buf[i] = r < count ? reinterpret_cast<const uint4*>(src)[c] : make_uint4(0, 0, 0, 0);
  }
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int idx = threadIdx.x + i * kTileWarps * 32, r = idx / kChunks, c = idx % kChunks;
    reinterpret_cast<uint4*>(dst + r * kQkvLd<HD>)[c] = buf[i];
  }
}

template <class T, int HD>
__device__ __forceinline__ void load_kv(T* k_dst, T* v_dst, const AttentionArgs& a, const SeqInfo& si, int first,
                                        int count, int col) {
  constexpr int kChunks = HD * sizeof(T) / 16, kIters = kPrefillTile * kChunks / (kTileWarps * 32);
  uint4 kb[kIters], vb[kIters];
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int idx = threadIdx.x + i * kTileWarps * 32, r = idx / kChunks, c = idx % kChunks;
    kb[i] = vb[i] = make_uint4(0, 0, 0, 0);
    if (r < count) {
      const int p = first + r;
      const int64_t off = (static_cast<int64_t>(a.pages[si.page_off + p / a.page_size]) * a.page_size +
                           p % a.page_size) * a.kv_heads * HD + col;
      kb[i] = reinterpret_cast<const uint4*>(static_cast<const T*>(a.k_pool) + off)[c];
      vb[i] = reinterpret_cast<const uint4*>(static_cast<const T*>(a.v_pool) + off)[c];
    }
  }
#pragma unroll
  for (int i = 0; i < kIters; ++i) {
    const int idx = threadIdx.x + i * kTileWarps * 32, r = idx / kChunks, c = idx % kChunks;
    reinterpret_cast<uint4*>(k_dst + r * kQkvLd<HD>)[c] = kb[i];
    reinterpret_cast<uint4*>(v_dst + r * kQkvLd<HD>)[c] = vb[i];
  }
}

template <class T, int HD>
__global__ void __launch_bounds__(kTileWarps * 32) prefill_kernel(AttentionArgs a) {
  extern __shared__ __align__(16) unsigned char smem[];
  constexpr int QL = kQkvLd<HD>, OL = kOLd<HD>;
  T* q_s = reinterpret_cast<T*>(smem);
  T* k_s = q_s + kPrefillTile * QL;
  T* v_s = k_s + kPrefillTile * QL;
  float* s_s = reinterpret_cast<float*>(v_s + kPrefillTile * QL);
  T* p_s = reinterpret_cast<T*>(s_s + kTileWarps * 16 * kSLd);
  float* o_s = reinterpret_cast<float*>(p_s + kTileWarps * 16 * kPLd);
  float* m_s = o_s + kTileWarps * 16 * OL;
  float* l_s = m_s + kPrefillTile;
  float* c_s = l_s + kPrefillTile;

  const int seq = a.tiles[2 * blockIdx.x], q0 = a.tiles[2 * blockIdx.x + 1], h = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const SeqInfo si = a.seqs[seq];
  const int q_count = min(kPrefillTile, si.q_len - q0);
  const int first_pos = si.kv_len - si.q_len + q0;  // position of the tile's first query row
  const int kv_end = min(si.kv_len, first_pos + q_count);
  const int kvh = h / (a.heads / a.kv_heads);
  const float scale_log2 = a.scale * 1.4426950408889634f;

  load_q<T, HD>(q_s, a, si, q0, q_count, h * HD);
  for (int i = threadIdx.x; i < kPrefillTile; i += blockDim.x) {
    m_s[i] = -INFINITY;
    l_s[i] = 0.0f;
  }
  float* o_w = o_s + warp * 16 * OL;
  for (int i = lane; i < 16 * OL; i += 32) o_w[i] = 0.0f;
  float* s_w = s_s + warp * 16 * kSLd;
  T* p_w = p_s + warp * 16 * kPLd;

  for (int kv0 = 0; kv0 < kv_end; kv0 += kPrefillTile) {
    __syncthreads();  // the previous tile's K/V are no longer read
    const int kv_count = min(kPrefillTile, kv_end - kv0);
    load_kv<T, HD>(k_s, v_s, a, si, kv0, kv_count, kvh * HD);
    __syncthreads();
    // S[16, 64] = Q_w[16, HD] K^T.
#pragma unroll
    for (int cb = 0; cb < kPrefillTile / 16; ++cb) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> qa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> kb;
        wmma::load_matrix_sync(qa, q_s + warp * 16 * QL + kk * 16, QL);
        wmma::load_matrix_sync(kb, k_s + cb * 16 * QL + kk * 16, QL);
        wmma::mma_sync(acc, qa, kb, acc);
      }
      wmma::store_matrix_sync(s_w + cb * 16, acc, kSLd, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax, one row at a time across the warp: lane takes columns
    // lane and lane + 32 (consecutive lanes, consecutive banks).
    for (int r = 0; r < 16; ++r) {
      const int row = warp * 16 + r, qpos = first_pos + row;
      const int c0 = kv0 + lane, c1 = kv0 + lane + 32;
      const float v0 = (c0 <= qpos && c0 < kv_end) ? s_w[r * kSLd + lane] * scale_log2 : -INFINITY;
      const float v1 = (c1 <= qpos && c1 < kv_end) ? s_w[r * kSLd + lane + 32] * scale_log2 : -INFINITY;
      const float m_old = m_s[row], m_new = fmaxf(m_old, warp_max(fmaxf(v0, v1)));
      const float p0 = m_new == -INFINITY ? 0.0f : exp2f(v0 - m_new);
      const float p1 = m_new == -INFINITY ? 0.0f : exp2f(v1 - m_new);
      p_w[r * kPLd + lane] = from_f<T>(p0);
      p_w[r * kPLd + lane + 32] = from_f<T>(p1);
      const float sum = warp_sum(p0 + p1);
      const float corr = m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);
      __syncwarp();
      if (lane == 0) {
        m_s[row] = m_new;
        l_s[row] = l_s[row] * corr + sum;
        c_s[row] = corr;
      }
    }
    __syncwarp();
    for (int i = lane; i < 16 * HD; i += 32) o_w[(i / HD) * OL + i % HD] *= c_s[warp * 16 + i / HD];
    __syncwarp();
    // O_w[16, HD] += P[16, 64] V[64, HD].
#pragma unroll
    for (int cb = 0; cb < HD / 16; ++cb) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_w + cb * 16, OL, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kPrefillTile / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> pa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> vb;
        wmma::load_matrix_sync(pa, p_w + kk * 16, kPLd);
        wmma::load_matrix_sync(vb, v_s + kk * 16 * QL + cb * 16, QL);
        wmma::mma_sync(acc, pa, vb, acc);
      }
      wmma::store_matrix_sync(o_w + cb * 16, acc, OL, wmma::mem_row_major);
    }
    __syncwarp();
  }
  for (int i = lane; i < 16 * HD; i += 32) {
    const int r = i / HD, d = i % HD, row = warp * 16 + r;
    if (row < q_count) {
      const float l = l_s[row];
      static_cast<T*>(a.out)[static_cast<int64_t>(si.q_begin + q0 + row) * a.heads * HD + h * HD + d] =
          from_f<T>(l > 0.0f ? o_w[r * OL + d] / l : 0.0f);
    }
  }
}

template <class T, int HD>
void launch_prefill(const AttentionArgs& a, cudaStream_t s) {
  constexpr size_t bytes = prefill_smem_bytes<HD>();
  static bool configured = false;  // per instantiation; the attribute is per kernel
  if (!configured) {
    cudaFuncSetAttribute(prefill_kernel<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
    configured = true;
  }
  prefill_kernel<T, HD><<<dim3(a.num_tiles, a.heads), kTileWarps * 32, bytes, s>>>(a);
}

// Heads per block as a compile-time count (1, 2 or 4), so the lanes
// kernel's per-head state fits in registers; the prepare-doing variant is a
// separate instantiation, so the plain kernel keeps its registers (sharing
// one body cost batch-64 decode 7%).
template <class T, int HD>
void launch_lanes(const AttentionArgs& a, int hpb, cudaStream_t s) {
  const dim3 grid(a.rows, a.heads / hpb, a.splits);
  const bool fused = a.prep.qkv != nullptr;
  switch (hpb) {
    case 1: launch_pdl(fused ? lanes_kernel<T, HD, 1, true> : lanes_kernel<T, HD, 1, false>, grid, kWarps * 32, 0, s, a); break;
    case 2: launch_pdl(fused ? lanes_kernel<T, HD, 2, true> : lanes_kernel<T, HD, 2, false>, grid, kWarps * 32, 0, s, a); break;
    default: launch_pdl(fused ? lanes_kernel<T, HD, 4, true> : lanes_kernel<T, HD, 4, false>, grid, kWarps * 32, 0, s, a); break;
  }
}

template <class T, int EPL>
void launch(const AttentionArgs& a, int hpb, cudaStream_t s) {
  const dim3 grid(a.rows, a.heads / hpb, a.splits);
  launch_pdl(attention_kernel<T, EPL>, grid, kWarps * 32, 0, s, a, hpb);
}

}  // namespace

bool prefill_tiles_apply(Ty t, int head_dim) { return t != Ty::F32 && (head_dim == 64 || head_dim == 128); }

int attention_heads_per_block(int heads, int kv_heads) {
  const int group = heads / kv_heads;
  int hpb = group < kMaxHeads ? group : kMaxHeads;
  while (group % hpb != 0) --hpb;
  return hpb;
}

bool attention_fuses_prepare(Ty t, int heads, int kv_heads, int head_dim) {
  const int hpb = attention_heads_per_block(heads, kv_heads);
  return t != Ty::F32 && (head_dim == 64 || head_dim == 128) && (hpb & (hpb - 1)) == 0 && hpb * head_dim <= 256;
}

void attention(Ty t, const AttentionArgs& a, cudaStream_t s) {
  if (a.rows == 0) return;
  const int hpb = attention_heads_per_block(a.heads, a.kv_heads);
  if (a.num_tiles > 0) {
    if (t == Ty::F16) {
      a.head_dim == 64 ? launch_prefill<__half, 64>(a, s) : launch_prefill<__half, 128>(a, s);
    } else {
      a.head_dim == 64 ? launch_prefill<__nv_bfloat16, 64>(a, s) : launch_prefill<__nv_bfloat16, 128>(a, s);
    }
  }
  // The lanes kernel keeps a K row and 32 V slices per lane in registers;
  // more heads per block than this would spill.
  if (attention_fuses_prepare(t, a.heads, a.kv_heads, a.head_dim)) {
    if (t == Ty::F16) {
      a.head_dim == 64 ? launch_lanes<__half, 64>(a, hpb, s) : launch_lanes<__half, 128>(a, hpb, s);
    } else {
      a.head_dim == 64 ? launch_lanes<__nv_bfloat16, 64>(a, hpb, s) : launch_lanes<__nv_bfloat16, 128>(a, hpb, s);
    }
    return;
  }
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
