// The persistent decode kernel: one block per multiprocessor runs a whole
// DecodeProgram (decode_program.h), op after op, with a grid barrier
// between two ops.
//
// Each block's share of an op is fixed by the op alone: the GEMVs split their
// output rows evenly over the blocks, attention gives each block one (row,
// kv head, chunk of positions) item. So a block knows every byte it will
// read from weights and from the KV cache of earlier steps before the step
// starts. Its first warp streams them, in the order they will be used,
// through a ring in shared memory (bulk copies, "loads" of at most
// kDecodeGroupBytes), as far ahead as the ring has room; a load's space is
// freed when the step of the op that used it is done. What depends on this
// step (the activations, the new K/V row) is read after the barrier, from L2
// (other blocks wrote it; L1 is not coherent).
#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/rope.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kThreads = 512, kWarps = kThreads / 32;
constexpr int kInflight = 8;    // loads in flight per block at most
constexpr int kSubChunk = 64;   // attention positions per load
constexpr int kMaxGroup = 8;    // query heads per kv head
constexpr int kMaxHd = 128;
constexpr int kMinChunk = 16;
constexpr int kMaxLoadRows = 64;  // weight rows per load
constexpr int kMaxMergeChunks = 160;  // chunks per (row, kv head): at most the blocks   // fewer positions per chunk cost more to merge than they save
constexpr int kXsBudget = 64 << 10;  // input staging: (rows + 1) * k * 2 bytes at most

// --- geometry: what a block reads for each op ---

struct GemvSpan {
  int r0, r1, rows_per_load, loads;
};

__device__ __forceinline__ GemvSpan gemv_span(const DecodeOp& op) {
  GemvSpan s;
  s.r0 = static_cast<int>(int64_t{blockIdx.x} * op.m / gridDim.x);
  s.r1 = static_cast<int>(int64_t{blockIdx.x + 1} * op.m / gridDim.x);
  const int row_bytes = op.k * 2 * (op.kind == kOpGemvNormSwiglu ? 2 : 1);
  s.rows_per_load = max(1, min(kMaxLoadRows, kDecodeGroupBytes / row_bytes));
  s.loads = (s.r1 - s.r0 + s.rows_per_load - 1) / s.rows_per_load;
  return s;
}

struct AttnItem {
  bool active;
  int row, kvh, chunk, p0, p1, visible, used, page_off, loads;
};

// Block b takes item b of rows * kv_heads * splits; a decode row sees
// kv_len positions, the last of them (cached = kv_len - 1) made this step.
__device__ __forceinline__ AttnItem make_attn_item(const DecodeProgram& p) {
  AttnItem it{};
  const int per_row = p.kv_heads * p.splits, item = blockIdx.x;
  if (item >= p.rows * per_row) return it;
  it.row = item / per_row;
  it.kvh = item / p.splits % p.kv_heads;
  it.chunk = item % p.splits;
  const SeqInfo si = p.seqs[p.row_seq[it.row]];
  it.visible = si.kv_len;
  it.page_off = si.page_off;
  const int chunk = max((it.visible + p.splits - 1) / p.splits, kMinChunk);
  it.used = (it.visible + chunk - 1) / chunk;
  if (it.chunk >= it.used) return it;
  it.active = true;
  it.p0 = it.chunk * chunk;
  it.p1 = min(it.visible, it.p0 + chunk);
  it.loads = (it.p1 - it.p0 + kSubChunk - 1) / kSubChunk;
  return it;
}

// Positions [q0, q1) of load j; the first `cached` of them come from the pools.
__device__ __forceinline__ void attn_sub(const AttnItem& it, int j, int& q0, int& q1, int& cached) {
  q0 = it.p0 + j * kSubChunk;
  q1 = min(it.p1, q0 + kSubChunk);
  cached = max(0, min(q1, it.visible - 1) - q0);
}



__device__ __forceinline__ uint32_t load_bytes(const DecodeProgram& p, const DecodeOp& op, const GemvSpan& s,
                                               int j, const AttnItem& item) {
  if (op.kind == kOpAttention) {
    int q0, q1, cached;
    attn_sub(item, j, q0, q1, cached);
    return static_cast<uint32_t>(2 * cached * p.head_dim * 2);
  }
  const int rows = min(s.rows_per_load, s.r1 - s.r0 - j * s.rows_per_load);
  return static_cast<uint32_t>(rows * op.k * 2 * (op.kind == kOpGemvNormSwiglu ? 2 : 1));
}

// The Hopper bulk-copy engine (TMA) moves the loads: one instruction per
// contiguous run, completion counted in bytes on an mbarrier per ring slot.
// Per-thread cp.async copies clogged the load/store pipe that the shared
// memory reads of the dot products go through (measured: 4x slower).
[[maybe_unused]] __device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void bar_init(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
__device__ __forceinline__ void bar_expect(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  do {
    asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(done)
                 : "r"(smem_addr(bar)), "r"(parity)
                 : "memory");
  } while (!done);
#endif
}
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
#endif
}

// Warp 0 queues load j into dst, `bytes` in all: weight rows (gate rows,
// then up rows), or the K rows then the V rows of the cached positions of
// an attention chunk.
template <class T>
__device__ __forceinline__ void issue_load(const DecodeProgram& p, const DecodeOp& op, const GemvSpan& s, int j,
                                           unsigned char* dst, uint32_t bytes, uint64_t* bar, const AttnItem& it) {
  const int lane = threadIdx.x % 32;
  if (lane == 0) bar_expect(bar, bytes);
  if (bytes == 0) return;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Earlier generic reads of this ring space are ordered before these writes.
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
  if (op.kind == kOpAttention) {
    int q0, q1, cached;
    attn_sub(it, j, q0, q1, cached);
    const int hd = p.head_dim, kv_dim = p.kv_heads * hd;
    T* k_dst = reinterpret_cast<T*>(dst);
    T* v_dst = k_dst + cached * hd;
    for (int r = lane; r < cached; r += 32) {
      const int pos = q0 + r;
      const int64_t slot = int64_t{p.pages[it.page_off + pos / p.page_size]} * p.page_size + pos % p.page_size;
      const int64_t off = slot * kv_dim + it.kvh * hd;
      bulk_copy(k_dst + r * hd, static_cast<const T*>(op.k_pool) + off, hd * sizeof(T), bar);
      bulk_copy(v_dst + r * hd, static_cast<const T*>(op.v_pool) + off, hd * sizeof(T), bar);
    }
    return;
  }
  if (lane != 0) return;
  const int first = s.r0 + j * s.rows_per_load, rows = min(s.rows_per_load, s.r1 - first);
  const uint32_t part = static_cast<uint32_t>(rows * op.k * sizeof(T));
  const T* w = static_cast<const T*>(op.w);
  bulk_copy(dst, w + int64_t{first} * op.k, part, bar);
  if (op.kind == kOpGemvNormSwiglu) bulk_copy(dst + part, w + int64_t{op.m + first} * op.k, part, bar);
}

// --- the ring ---

// Every thread keeps an identical copy of this state in registers (all take
// the same branches); what is indexed at run time sits in shared memory.
// Load n goes to slot n % kInflight; its mbarrier's phase n / kInflight.
struct Ring {
  unsigned char* base;
  uint32_t size;
  uint32_t head, tail;     // byte offsets that only grow; a load lies whole in the ring
  uint32_t issued, used;   // loads issued, loads consumed
  int op, j;               // the next load to issue
  uint32_t* start;         // [kInflight] ring offsets, shared memory
  uint64_t* bars;          // [kInflight] mbarriers, shared memory
  const AttnItem* item;    // this block's attention item, shared memory
  const GemvSpan* spans;   // [num_ops] this block's rows of each GEMV (attention: loads only)
};

// Issues loads in order while the ring has room (warp 0 only).
template <class T>
__device__ __forceinline__ void fill(const DecodeProgram& p, Ring& r) {
  while (r.issued - r.used < kInflight && r.op < p.num_ops) {
    const DecodeOp& op = p.ops[r.op];
    const GemvSpan& span = r.spans[r.op];
    if (r.j >= span.loads) {
      ++r.op;
      r.j = 0;
      continue;
    }
    const uint32_t bytes = load_bytes(p, op, span, r.j, *r.item);
    uint32_t at = r.head;
    if (at % r.size + bytes > r.size) at += r.size - at % r.size;
    if (at + bytes - r.tail > r.size) return;
    const int slot = r.issued % kInflight;
    // The offset is written before the mbarrier arrival that publishes it.
    if (threadIdx.x == 0) r.start[slot] = at;
    issue_load<T>(p, op, span, r.j, r.base + at % r.size, bytes, r.bars + slot, *r.item);
    ++r.issued;
    r.head = at + bytes;
    ++r.j;
  }
}

// Waits for the oldest load and returns where it is.
__device__ __forceinline__ const unsigned char* front(Ring& r) {
  const int slot = r.used % kInflight;
  bar_wait(r.bars + slot, (r.used / kInflight) & 1);
  return r.base + r.start[slot] % r.size;
}

// Frees the oldest load (every thread is done with it); warp 0, the
// producer, issues more.
template <class T>
__device__ __forceinline__ void pop(const DecodeProgram& p, Ring& r) {
  __syncthreads();
  ++r.used;
  if (threadIdx.x >= 32) return;
  r.tail = r.issued > r.used ? r.start[r.used % kInflight] : r.head;
  fill<T>(p, r);
}

// All blocks have finished the op before; its writes are visible after.
__device__ __forceinline__ void grid_barrier(uint32_t* count, uint32_t& target) {
  __syncthreads();
  target += gridDim.x;
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(count, 1u);
    uint32_t seen;
    do {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(seen) : "l"(count) : "memory");
    } while (seen < target);
  }
  __syncthreads();
}

// --- GEMV ops ---

struct Scratch {
  float rstd[kMaxDecodeRows];
  float partial[kMaxLoadRows][2][kMaxDecodeRows];
  float rot_cs[kMaxDecodeRows][kMaxHd / 2], rot_sn[kMaxDecodeRows][kMaxHd / 2];  // per row, from the kernel's start
  __align__(16) unsigned short head_norm[2][kMaxHd];  // q_norm, k_norm of the attention op at hand
  float sq[kMaxGroup * kMaxHd];       // scaled q heads
  float score[kMaxGroup][kSubChunk];  // scores, then probabilities
  float m[kMaxGroup], l[kMaxGroup], corr[kMaxGroup];
  float merge_w[kMaxGroup][kMaxMergeChunks];
  int ticket;
};

// xs = the input rows as the projection sees them (normalised for the norm
// modes, rounded as the RMSNorm kernel rounds); read from L2.
template <class T, int N, int kMode>
__device__ __forceinline__ void stage_input(const DecodeOp& op, int rows, T* xs, const T* nws, Scratch& sc) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, k = op.k, pieces = k / 8;
  const T* x = static_cast<const T*>(op.x);
  if constexpr (has_norm(kMode)) {
    for (int n = warp; n < rows; n += kWarps) {
      float ss = 0.0f;
      for (int c = lane; c < pieces; c += 32) {
        const uint4 v = __ldcg(reinterpret_cast<const uint4*>(x + int64_t{n} * k) + c);
        ss += dot8<T>(v, v);
      }
      ss = warp_sum(ss);
      if (lane == 0) sc.rstd[n] = rsqrtf(ss / static_cast<float>(k) + op.eps);
    }
    __syncthreads();
  }
  for (int i = threadIdx.x; i < rows * pieces; i += kThreads) {
    const int n = i / pieces, c = i % pieces;
    uint4 v = __ldcg(reinterpret_cast<const uint4*>(x + int64_t{n} * k) + c);
    if constexpr (has_norm(kMode)) {
      const uint4 g = reinterpret_cast<const uint4*>(nws)[c];
      T* vt = reinterpret_cast<T*>(&v);
      const T* gt = reinterpret_cast<const T*>(&g);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[e] = from_f<T>(gemv_input<T, kMode>(to_f(vt[e]), to_f(gt[e]), sc.rstd[n]));
    }
    reinterpret_cast<uint4*>(xs + n * k)[c] = v;
  }
  __syncthreads();
}

// Rows [first, first + count) of the op from weights ws (shared memory):
// wpr warps per row, then one thread per (row, input row) sums and stores.
template <class T, int N, int kMode>
__device__ __forceinline__ void gemv_rows(const DecodeOp& op, const T* ws, const T* xs, int first, int count,
                                          int rows, Scratch& sc) {
  constexpr bool kDual = kMode == kNormSwiglu;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, k = op.k;
  // Few rows: several warps per row; many: each warp takes rows in turn.
  int wpr = 1;
  while (count * wpr * 2 <= kWarps) wpr *= 2;
  for (int it = warp; it < count * wpr; it += kWarps) {
    const int r = it / wpr, part = it % wpr;
    const T* wr = ws + r * k;
    const T* wu = ws + (count + r) * k;
    float acc[N], acc_u[N];
    row_dots<T, N, kDual>(wr, wu, xs, k, part, wpr, rows, acc, acc_u);
    if (lane == 0)
#pragma unroll
      for (int n = 0; n < N; ++n) {
        sc.partial[it][0][n] = acc[n];
        sc.partial[it][1][n] = kDual ? acc_u[n] : 0.0f;
      }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < count * rows; i += kThreads) {
    const int r = i / rows, n = i % rows, row = first + r;
    float g = 0.0f, u = 0.0f;
    for (int q = 0; q < wpr; ++q) {
      g += sc.partial[r * wpr + q][0][n];
      u += sc.partial[r * wpr + q][1][n];
    }
    T* o = static_cast<T*>(op.out) + int64_t{n} * op.m + row;
    const float old = kMode == kAdd ? to_f(__ldcg(o)) : 0.0f;
    *o = from_f<T>(gemv_value<T, kMode>(g, u, static_cast<const T*>(op.bias), row, op.m, old));
  }
}

template <class T, int N, int kMode>
__device__ __forceinline__ void gemv_op(const DecodeProgram& p, int i, Ring& ring, T* xs, const T* nws,
                                        Scratch& sc) {
  const DecodeOp& op = p.ops[i];
  const GemvSpan& s = ring.spans[i];
  if (s.loads == 0) return;
  stage_input<T, N, kMode>(op, p.rows, xs, nws, sc);
  for (int j = 0; j < s.loads; ++j) {
    const T* ws = reinterpret_cast<const T*>(front(ring));
    const int first = s.r0 + j * s.rows_per_load;
    gemv_rows<T, N, kMode>(op, ws, xs, first, min(s.rows_per_load, s.r1 - first), p.rows, sc);
    pop<T>(p, ring);
  }
}

// --- attention ops ---

// The item's q heads (norm + rope, rounded to T as the prepare kernel
// writes them, then scaled) into sc.sq; where the item holds the row's new
// position, its K (norm + rope) and V rows into fresh_k/v and the pools.
template <class T>
__device__ __forceinline__ void attn_prepare(const DecodeProgram& p, const DecodeOp& op, const AttnItem& it,
                                             Scratch& sc, T* fresh_k, T* fresh_v) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim;
  const int group = p.heads / p.kv_heads;
  const bool fresh_here = it.p1 == it.visible;
  const T* src = static_cast<const T*>(op.x) + int64_t{it.row} * (p.heads + 2 * p.kv_heads) * hd;
  const T* q_norm = op.nw ? reinterpret_cast<const T*>(sc.head_norm[0]) : nullptr;
  const T* k_norm = op.w ? reinterpret_cast<const T*>(sc.head_norm[1]) : nullptr;
  Rotary rot;
#pragma unroll
  for (int i = 0; i < kRopePairs; ++i) {
    const int j = min(lane + 32 * i, kMaxHd / 2 - 1);
    rot.cs[i] = sc.rot_cs[it.row][j];
    rot.sn[i] = sc.rot_sn[it.row][j];
  }
  for (int job = warp; job < group + (fresh_here ? 2 : 0); job += kWarps) {
    // norm_rope_head reads its source with plain loads: stage it from L2 first.
    T* head = fresh_v + kMaxHd + job * kMaxHd;
    const int col = job < group ? (it.kvh * group + job) * hd
                                : (job == group ? p.heads + it.kvh : p.heads + p.kv_heads + it.kvh) * hd;
    for (int j = lane; j < hd; j += 32) head[j] = __ldcg(src + col + j);
    __syncwarp();
    if (job < group) {
      float* dst = sc.sq + job * hd;
      norm_rope_head(head, q_norm, op.eps, rot, hd, [&](int j, float v) { dst[j] = round_to<T>(v) * p.scale; });
    } else if (job == group) {
      norm_rope_head(head, k_norm, op.eps, rot, hd, [&](int j, float v) { fresh_k[j] = from_f<T>(v); });
    } else {
      for (int j = lane; j < hd; j += 32) fresh_v[j] = head[j];
    }
  }
  __syncthreads();
  if (fresh_here) {
    const int64_t at = int64_t{p.slots[it.row]} * p.kv_heads * hd + it.kvh * hd;
    for (int j = threadIdx.x; j < hd; j += kThreads) {
      static_cast<T*>(op.k_pool)[at + j] = fresh_k[j];
      static_cast<T*>(op.v_pool)[at + j] = fresh_v[j];
    }
  }
}

// One load's positions: scores (a warp per position), the online softmax
// step (a warp per head), then P V (a thread per (head, element)).
template <class T>
__device__ __forceinline__ void attn_step(const DecodeProgram& p, const T* kv, int count, int cached,
                                          const T* fresh_k, const T* fresh_v, Scratch& sc, float (&acc)[2]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim;
  const int group = p.heads / p.kv_heads;
  const T* ks = kv;
  const T* vs = kv + cached * hd;
  for (int i = warp; i < count; i += kWarps) {
    const T* krow = i < cached ? ks + i * hd : fresh_k;
    float kf[kMaxHd / 32];
#pragma unroll
    for (int e = 0; e < kMaxHd / 32; ++e) kf[e] = lane + 32 * e < hd ? to_f(krow[lane + 32 * e]) : 0.0f;
    for (int g = 0; g < group; ++g) {
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < kMaxHd / 32; ++e)
        if (lane + 32 * e < hd) s += sc.sq[g * hd + lane + 32 * e] * kf[e];
      s = warp_sum(s);
      if (lane == 0) sc.score[g][i] = s;
    }
  }
  __syncthreads();
  if (warp < group) {
    const int g = warp;
    const float v0 = lane < count ? sc.score[g][lane] : -INFINITY;
    const float v1 = lane + 32 < count ? sc.score[g][lane + 32] : -INFINITY;
    const float m_old = sc.m[g], m_new = fmaxf(m_old, warp_max(fmaxf(v0, v1)));
    const float e0 = lane < count ? __expf(v0 - m_new) : 0.0f;
    const float e1 = lane + 32 < count ? __expf(v1 - m_new) : 0.0f;
    if (lane < count) sc.score[g][lane] = e0;
    if (lane + 32 < count) sc.score[g][lane + 32] = e1;
    const float sum = warp_sum(e0 + e1);
    if (lane == 0) {
      const float corr = __expf(m_old - m_new);
      sc.corr[g] = corr;
      sc.l[g] = sc.l[g] * corr + sum;
      sc.m[g] = m_new;
    }
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = threadIdx.x + h * kThreads, g = t / hd, d = t % hd;
    if (g >= group) break;
    float a = acc[h] * sc.corr[g];
    for (int i = 0; i < count; ++i) a += sc.score[g][i] * to_f(i < cached ? vs[i * hd + d] : fresh_v[d]);
    acc[h] = a;
  }
}

// The item's result: the output itself when the row's positions fit one
// chunk; else its partial state, and the last chunk of (row, kv head) to
// finish merges them all.
template <class T>
__device__ __forceinline__ void attn_finish(const DecodeProgram& p, const DecodeOp& op, const AttnItem& it,
                                            Scratch& sc, const float (&acc)[2]) {
  const int hd = p.head_dim, group = p.heads / p.kv_heads;
  T* out = static_cast<T*>(op.out) + int64_t{it.row} * p.heads * hd + it.kvh * group * hd;
  if (it.used == 1) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int t = threadIdx.x + h * kThreads, g = t / hd, d = t % hd;
      if (g < group) out[g * hd + d] = from_f<T>(acc[h] / sc.l[g]);
    }
    return;
  }
  const int stride = hd + 2;
  float* base = p.partial + (int64_t{it.row} * p.heads + it.kvh * group) * p.splits * stride;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = threadIdx.x + h * kThreads, g = t / hd, d = t % hd;
    if (g >= group) break;
    float* part = base + (int64_t{g} * p.splits + it.chunk) * stride;
    if (d == 0) {
      part[0] = sc.m[g];
      part[1] = sc.l[g];
    }
    part[2 + d] = acc[h];
  }
  __threadfence();
  __syncthreads();
  int32_t* counter = p.counters + it.row * p.kv_heads + it.kvh;
  if (threadIdx.x == 0) sc.ticket = atomicAdd(counter, 1);
  __syncthreads();
  if (sc.ticket != it.used - 1) return;
  __threadfence();
  // Every chunk's (m, l) at once (a lane per chunk), then each output
  // element's partial sums with all their loads in flight: the merge sits
  // on the step's critical path, and L2 is busy with the weight stream.
  if (threadIdx.x < 32 * group) {
    const int g = threadIdx.x / 32, lane = threadIdx.x % 32;
    const float* part = base + int64_t{g} * p.splits * stride;
    float mx = -INFINITY, tot = 0.0f;
    for (int c = lane; c < it.used; c += 32) mx = fmaxf(mx, __ldcg(part + c * stride));
    mx = warp_max(mx);
    for (int c = lane; c < it.used; c += 32) {
      const float w = __expf(__ldcg(part + c * stride) - mx);
      sc.merge_w[g][c] = w;
      tot += w * __ldcg(part + c * stride + 1);
    }
    tot = warp_sum(tot);
    if (lane == 0) sc.l[g] = tot;
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = threadIdx.x + h * kThreads, g = t / hd, d = t % hd;
    if (g >= group) break;
    const float* part = base + int64_t{g} * p.splits * stride + 2 + d;
    float val = 0.0f;
    for (int c0 = 0; c0 < it.used; c0 += 8) {
      float v[8];
#pragma unroll
      for (int c = 0; c < 8; ++c) v[c] = c0 + c < it.used ? __ldcg(part + (c0 + c) * stride) : 0.0f;
#pragma unroll
      for (int c = 0; c < 8; ++c) val += c0 + c < it.used ? v[c] * sc.merge_w[g][c0 + c] : 0.0f;
    }
    out[g * hd + d] = from_f<T>(val / sc.l[g]);
  }
  if (threadIdx.x == 0) *counter = 0;
}

template <class T>
__device__ __forceinline__ void attention_op(const DecodeProgram& p, const DecodeOp& op, Ring& ring, Scratch& sc,
                                             T* fresh) {
  const AttnItem& it = *ring.item;
  if (!it.active) return;
  T* fresh_k = fresh;
  T* fresh_v = fresh + kMaxHd;
  attn_prepare<T>(p, op, it, sc, fresh_k, fresh_v);
  if (threadIdx.x < kMaxGroup) {
    sc.m[threadIdx.x] = -INFINITY;
    sc.l[threadIdx.x] = 0.0f;
  }
  float acc[2] = {0.0f, 0.0f};
  for (int j = 0; j < it.loads; ++j) {
    int q0, q1, cached;
    attn_sub(it, j, q0, q1, cached);
    const T* kv = reinterpret_cast<const T*>(front(ring));
    attn_step<T>(p, kv, q1 - q0, cached, fresh_k, fresh_v, sc, acc);
    pop<T>(p, ring);
  }
  attn_finish<T>(p, op, it, sc, acc);
}

// --- the kernel ---

template <class T, int N>
__global__ void __launch_bounds__(kThreads, 1) decode_kernel(const __grid_constant__ DecodeProgram params,
                                                             uint32_t xs_bytes, uint32_t ring_bytes) {
  // The program is read over and over at run-time indices: from shared
  // memory, not through the constant cache (which misses on 10+ KB).
  __shared__ __align__(16) DecodeProgram p;
  {
    const uint4* src = reinterpret_cast<const uint4*>(&params);
    uint4* dst = reinterpret_cast<uint4*>(&p);
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(DecodeProgram) / 16); i += kThreads) dst[i] = src[i];
    __syncthreads();
  }
  extern __shared__ uint4 smem[];
  __shared__ Scratch sc;
  // fresh K, fresh V, then a staging row per warp job (attn_prepare).
  __shared__ __align__(16) T fresh[(kMaxGroup + 4) * kMaxHd];
  T* xs = reinterpret_cast<T*>(smem);
  T* nws = xs + N * p.max_k;  // the op's norm weights (xs_bytes covers both)
  __shared__ uint32_t starts[kInflight];
  __shared__ __align__(8) uint64_t bars[kInflight];
  __shared__ AttnItem item;
  __shared__ GemvSpan spans[kMaxDecodeOps];
  if (threadIdx.x == 0) {
    item = p.heads > 0 ? make_attn_item(p) : AttnItem{};
    for (int i = 0; i < kInflight; ++i) bar_init(bars + i);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
  }
  __syncthreads();
  // The rotary angles of each row: the same in every layer.
  if (p.heads > 0)
    for (int i = threadIdx.x; i < p.rows * p.head_dim / 2; i += kThreads) {
      const int n = i / (p.head_dim / 2), j = i % (p.head_dim / 2);
      sincosf(static_cast<float>(p.positions[n]) * p.inv_freq[j], &sc.rot_sn[n][j], &sc.rot_cs[n][j]);
    }
  // Each block's share of each op, worked out once (the divisions are not cheap).
  for (int i = threadIdx.x; i < p.num_ops; i += kThreads)
    spans[i] = p.ops[i].kind == kOpAttention ? GemvSpan{0, 0, 0, item.loads} : gemv_span(p.ops[i]);
  __syncthreads();
  Ring ring{reinterpret_cast<unsigned char*>(smem) + xs_bytes, ring_bytes, 0, 0, 0, 0, 0, 0, starts, bars, &item, spans};
  if (threadIdx.x < 32) fill<T>(p, ring);
  uint32_t target = 0;
  for (int i = 0; i < p.num_ops; ++i) {
    // What the op reads that no op writes (norm weights) comes in while
    // the block waits at the barrier.
    {
      const DecodeOp& op = p.ops[i];
      if (op.kind == kOpAttention) {
        for (int j = threadIdx.x; j < 2 * p.head_dim; j += kThreads) {
          const void* src = j < p.head_dim ? op.nw : op.w;
          if (src) sc.head_norm[j / p.head_dim][j % p.head_dim] = static_cast<const unsigned short*>(src)[j % p.head_dim];
        }
      } else if (op.kind != kOpGemvAdd && ring.spans[i].loads > 0) {
        for (int j = threadIdx.x; j < op.k / 8; j += kThreads)
          reinterpret_cast<uint4*>(nws)[j] = reinterpret_cast<const uint4*>(op.nw)[j];
      }
    }
    if (i > 0) grid_barrier(p.barrier, target);
    const DecodeOp& op = p.ops[i];
    switch (op.kind) {
      case kOpGemvNorm: gemv_op<T, N, kNorm>(p, i, ring, xs, nws, sc); break;
      case kOpGemvNormSwiglu: gemv_op<T, N, kNormSwiglu>(p, i, ring, xs, nws, sc); break;
      case kOpGemvAdd: gemv_op<T, N, kAdd>(p, i, ring, xs, nws, sc); break;
      default: attention_op<T>(p, op, ring, sc, fresh); break;
    }
    __syncthreads();  // the next op's prologue overwrites what this one read
  }
  // The barrier words go back to zero once every block has passed the last
  // barrier (none is still reading them).
  __syncthreads();
  if (threadIdx.x == 0 && atomicAdd(p.barrier + 1, 1u) == gridDim.x - 1) {
    p.barrier[0] = 0;
    p.barrier[1] = 0;
    __threadfence();
  }
}

template <class T, int N>
void launch(const DecodeProgram& p, int blocks, cudaStream_t s) {
  auto kernel = decode_kernel<T, N>;
  static const int dynamic = [&] {
    int dev = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    cudaFuncAttributes attr{};
    cudaFuncGetAttributes(&attr, kernel);
    const int bytes = (optin - static_cast<int>(attr.sharedSizeBytes) - 1024) / 16 * 16;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
    return bytes;
  }();
  const uint32_t xs_bytes = (static_cast<uint32_t>((N + 1) * p.max_k * 2) + 15) / 16 * 16;
  const uint32_t ring_bytes = (static_cast<uint32_t>(dynamic) - xs_bytes) / 16 * 16;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(dynamic);
  cfg.stream = s;
  // Every block waits for all the others at the barriers: they must all be
  // resident at once, which a cooperative launch guarantees (or refuses).
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, p, xs_bytes, ring_bytes), "decode kernel launch");
}

template <class T>
void launch_rows(const DecodeProgram& p, int blocks, cudaStream_t s) {
  if (p.rows <= 1) return launch<T, 1>(p, blocks, s);
  if (p.rows <= 2) return launch<T, 2>(p, blocks, s);
  if (p.rows <= 4) return launch<T, 4>(p, blocks, s);
  return launch<T, 8>(p, blocks, s);
}

int rows_bucket(int rows) { return rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8; }

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool decode_gemv_fits(Ty t, int rows, int m, int k, bool dual, const void* x, const void* w, const void* nw) {
  if (t == Ty::F32 || rows < 1 || rows > kMaxDecodeRows || m < 1 || k < 8 || k % 8 != 0) return false;
  if (int64_t{k} * 2 * (dual ? 2 : 1) > kDecodeGroupBytes) return false;
  if (int64_t{rows_bucket(rows) + 1} * k * 2 > kXsBudget) return false;  // input rows and norm weights
  return aligned16(x) && aligned16(w) && aligned16(nw);
}

bool decode_attention_fits(Ty t, int rows, int heads, int kv_heads, int head_dim) {
  if (t == Ty::F32 || rows < 1 || rows > kMaxDecodeRows || kv_heads < 1 || heads % kv_heads != 0) return false;
  return head_dim % 8 == 0 && head_dim >= 8 && head_dim <= kMaxHd && heads / kv_heads <= kMaxGroup;
}

int decode_attention_splits(int rows, int kv_heads, int blocks) {
  return std::clamp(blocks / (rows * kv_heads), 1, kMaxMergeChunks);
}

void run_decode_program(Ty t, const DecodeProgram& p, int blocks, cudaStream_t s) {
  if (p.num_ops == 0) return;
  if (t == Ty::F16) {
    launch_rows<__half>(p, blocks, s);
  } else {
    launch_rows<__nv_bfloat16>(p, blocks, s);
  }
}

}  // namespace nativelm::cuda
