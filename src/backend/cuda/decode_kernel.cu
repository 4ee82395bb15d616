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
//
// A flagged program (DecodeProgram::flags, template flag F) has no barrier
// between ops: each op's output also goes out as flagged words
// (decode_flags.cuh), and the next op polls for them instead.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_device.cuh"
#include "backend/cuda/decode_flags.cuh"
#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/rope.cuh"

namespace nativelm::cuda {

namespace {

using namespace decode;

// Flagged programs (pairs): whole pairs of rows, a flagged word each.
__device__ __forceinline__ GemvSpan gemv_span(const DecodeOp& op, bool pairs) {
  GemvSpan s;
  const int unit = pairs ? 2 : 1, units = op.m / unit;
  s.r0 = unit * static_cast<int>(int64_t{blockIdx.x} * units / gridDim.x);
  s.r1 = unit * static_cast<int>(int64_t{blockIdx.x + 1} * units / gridDim.x);
  const int row_bytes = op.k * 2 * (op.kind == kOpGemvNormSwiglu ? 2 : 1);
  s.rows_per_load = max(unit, min(kMaxLoadRows, kDecodeGroupBytes / row_bytes) / unit * unit);
  s.loads = (s.r1 - s.r0 + s.rows_per_load - 1) / s.rows_per_load;
  return s;
}

// Block b takes item b of rows * kv_heads * splits; a decode row sees
// kv_len positions, the last of them (cached = kv_len - 1) made this step.
__device__ __forceinline__ AttnItem make_attn_item(const DecodeProgram& p) {
  AttnItem it{};
  it.group = p.heads / p.kv_heads;
  it.by_hd = div_magic(p.head_dim);
  const int per_row = p.kv_heads * p.splits, item = blockIdx.x;
  if (item >= p.rows * per_row) return it;
  it.row = item / per_row;
  it.kvh = item / p.splits % p.kv_heads;
  it.chunk = item % p.splits;
  const SeqInfo si = p.seqs[p.row_seq[it.row]];
  it.visible = si.kv_len;
  it.page_off = si.page_off;
  int chunk = max((it.visible + p.splits - 1) / p.splits, p.min_chunk);
  if (p.rows == 1 && it.visible <= p.one_chunk) chunk = it.visible;
  if (p.kv_box) chunk = round_up(chunk, kKvBoxRows);
  it.used = (it.visible + chunk - 1) / chunk;
  if (it.chunk >= it.used) return it;
  it.active = true;
  it.p0 = it.chunk * chunk;
  it.p1 = min(it.visible, it.p0 + chunk);
  it.loads = (it.p1 - it.p0 + kSubChunk - 1) / kSubChunk;
  return it;
}

// What an op's first load carries before its weights or K/V rows: the norm
// weights (GEMV with a norm: [k]; attention: q_norm then k_norm, [head_dim]
// each, room kept for both).
__device__ __forceinline__ uint32_t prefix_bytes(const DecodeProgram& p, const DecodeOp& op) {
  // Attention: the boxes after the norms start 128-byte aligned (the load is).
  if (op.kind == kOpAttention) return static_cast<uint32_t>(p.kv_box ? round_up(4 * p.head_dim, 128) : 4 * p.head_dim);
  return op.kind == kOpGemvAdd ? 0u : static_cast<uint32_t>(op.k * 2);
}

// The K (and V) rows an attention load's boxes bring for `cached` positions.
__device__ __forceinline__ int kv_rows(const DecodeProgram& p, int cached) {
  return p.kv_box ? round_up(cached, kKvBoxRows) : cached;
}

// The ring space load j takes.
__device__ __forceinline__ uint32_t load_bytes(const DecodeProgram& p, const DecodeOp& op, const GemvSpan& s, int j,
                                               const AttnItem& item) {
  const uint32_t prefix = j == 0 ? prefix_bytes(p, op) : 0u;
  if (op.kind == kOpAttention) {
    int q0, q1, cached;
    attn_sub(item, j, q0, q1, cached);
    return prefix + static_cast<uint32_t>(2 * kv_rows(p, cached) * p.head_dim * 2);
  }
  const int rows = min(s.rows_per_load, s.r1 - s.r0 - j * s.rows_per_load);
  return prefix + static_cast<uint32_t>(rows * padded(op.k) * 2 * (op.kind == kOpGemvNormSwiglu ? 2 : 1));
}

// The producer warp queues load j into dst: the op's norm weights if it is
// the first (prefix_bytes), then weight rows (gate rows, then up rows), or
// the K rows then the V rows of the cached positions of an attention chunk.
template <class T>
__device__ __forceinline__ void issue_load(const DecodeProgram& p, const KvMaps& maps, const DecodeOp& op,
                                           const GemvSpan& s, int j, unsigned char* dst, uint64_t* bar,
                                           const AttnItem& it) {
  const int lane = threadIdx.x % 32;
  if (op.kind == kOpAttention) {
    int q0, q1, cached;
    attn_sub(it, j, q0, q1, cached);
    const int hd = p.head_dim, kv_dim = p.kv_heads * hd;
    const uint32_t norm_bytes = hd * sizeof(T);
    const bool norms = j == 0;
    const int krows = kv_rows(p, cached);
    if (lane == 0)
      bar_expect(bar, 2 * krows * norm_bytes + (norms && op.nw ? norm_bytes : 0) + (norms && op.w ? norm_bytes : 0));
    if (norms) {
      if (lane == 0 && op.nw) bulk_copy(dst, op.nw, norm_bytes, bar);
      if (lane == 1 && op.w) bulk_copy(dst + norm_bytes, op.w, norm_bytes, bar);
      dst += prefix_bytes(p, op);
    }
    T* k_dst = reinterpret_cast<T*>(dst);
    T* v_dst = k_dst + krows * hd;
    if (p.kv_box) {
      // A box per kKvBoxRows positions (q0 is a multiple; a box stays in its page).
      for (int b = lane; b * kKvBoxRows < cached; b += 32) {
        const int pos = q0 + b * kKvBoxRows;
        const int slot = p.pages[it.page_off + pos / p.page_size] * p.page_size + pos % p.page_size;
        bulk_box(k_dst + b * kKvBoxRows * hd, &maps.k[op.m], it.kvh * hd, slot, bar);
        bulk_box(v_dst + b * kKvBoxRows * hd, &maps.v[op.m], it.kvh * hd, slot, bar);
      }
      return;
    }
    for (int r = lane; r < cached; r += 32) {
      const int pos = q0 + r;
      const int64_t slot = int64_t{p.pages[it.page_off + pos / p.page_size]} * p.page_size + pos % p.page_size;
      const int64_t off = slot * kv_dim + it.kvh * hd;
      bulk_copy(k_dst + r * hd, static_cast<const T*>(op.k_pool) + off, norm_bytes, bar);
      bulk_copy(v_dst + r * hd, static_cast<const T*>(op.v_pool) + off, norm_bytes, bar);
    }
    return;
  }
  // A row per copy, to its padded place: the gate rows, then the up rows.
  const int first = s.r0 + j * s.rows_per_load, rows = min(s.rows_per_load, s.r1 - first);
  const int copies = rows * (op.kind == kOpGemvNormSwiglu ? 2 : 1);
  const uint32_t row_bytes = static_cast<uint32_t>(op.k * sizeof(T));
  const uint32_t prefix = j == 0 && op.kind != kOpGemvAdd ? row_bytes : 0u;
  if (lane == 0) bar_expect(bar, prefix + copies * row_bytes);
  __syncwarp();
  if (lane == 0 && prefix) bulk_copy(dst, op.nw, prefix, bar);
  dst += prefix;
  const T* w = static_cast<const T*>(op.w);
  for (int r = lane; r < copies; r += 32) {
    const int src = r < rows ? first + r : op.m + first + (r - rows);
    bulk_copy(dst + r * padded(op.k) * sizeof(T), w + int64_t{src} * op.k, row_bytes, bar);
  }
}

// The producer warp: every load of the program in order, each queued as
// soon as its slot and its bytes of the ring are free, and fewer than
// p.inflight_bytes are still on their way. It takes no part in the compute
// threads' barriers, so nothing it waits for (a page-table read, a full
// bulk-copy queue) holds up the step. The cap on bytes in flight keeps the
// memory system's queues short: 132 blocks refilling their rings at once
// after an op queue megabytes of reads, and the grid barrier's few
// requests wait behind them.
template <class T>
__device__ void produce(const DecodeProgram& p, const KvMaps& maps, RingShared& sh, unsigned char* base, uint32_t size,
                        const GemvSpan* spans, const AttnItem& it, unsigned long long* trace) {
  Feeder f{sh, base, size, p.inflight_bytes, 0, 0, 0, 0};
  for (int i = 0; i < p.num_ops; ++i) {
    const DecodeOp& op = p.ops[i];
    for (int j = 0; j < spans[i].loads; ++j) {
      uint64_t* bar;
      // Cached K/V rows go out at once, past the cap and the pause: they
      // are few bytes, come from HBM in small scattered copies, and a chunk
      // whose rows land late holds up the merge, hence the whole step
      // (measured at 576 positions: 1,147 -> 1,205 tok/s).
      const bool weights = op.kind != kOpAttention;
      unsigned char* dst =
          f.reserve(load_bytes(p, op, spans[i], j, it), bar, weights, weights, !weights && p.kv_box ? 128 : 16);
      if (trace && j == 0 && threadIdx.x % 32 == 0) {
        unsigned long long ns;
        asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(ns));
        trace[int64_t{i} * gridDim.x * kTraceStamps + 7] = ns;
      }
      issue_load<T>(p, maps, op, spans[i], j, dst, bar, it);
      __syncwarp();
    }
  }
}

// Thread 0 records when this block reached phase `at` of op i (tracing only).
__device__ __forceinline__ void trace_stamp(const DecodeProgram& p, int i, int at) {
  if (p.trace == nullptr || threadIdx.x != 0) return;
  unsigned long long ns;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(ns));
  unsigned long long* t = p.trace + (int64_t{i} * gridDim.x + blockIdx.x) * kTraceStamps;
  t[at] = ns;
  t[3 + at] = clock64();
}

// --- GEMV ops ---

// xs = the input rows as the projection sees them (normalised for the norm
// modes, rounded as the RMSNorm kernel rounds); read from L2.
// In a flagged program the input comes from its op's flagged output `in`
// (polled) where that op is in the program.
template <class T, int N, bool F>
__device__ __forceinline__ void stage_input(const DecodeOp& op, int rows, bool norm, uint32_t by_pieces, T* xs,
                                            const T* nws, Scratch& sc, unsigned long long* stamps, const Word* in,
                                            uint32_t epoch, uint32_t poll_ns) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, k = op.k, pieces = k / 8;
  const T* x = static_cast<const T*>(op.x);
  if (F && in && !norm) {
    // plan_flagged: normalised inputs take the register path below.
    const int total = rows * pieces;
    for (int base = 0; base < total; base += kFlagPieces * kThreads) {
      uint4 v[kFlagPieces];
      poll_pieces<kFlagPieces>(in, base, total, epoch, poll_ns, v);
#pragma unroll
      for (int r = 0; r < kFlagPieces; ++r) {
        const int i = base + threadIdx.x + r * kThreads;
        if (i >= total) break;
        const int n = fast_div(i, by_pieces), c = i - n * pieces;
        reinterpret_cast<uint4*>(xs + n * padded(k))[c] = v[r];
      }
    }
    fine_stamp(stamps, 18);
    csync();
    fine_stamp(stamps, 19);
    return;
  }
  // Flagged programs hold fewer pieces (plan_flagged): more would spill.
  constexpr int R = F ? kFlagPieces : kStageRegs;
  if (norm && pieces % 32 == 0 && rows * pieces <= R * kThreads) {
    // One trip to L2: each thread keeps its pieces in registers while the
    // row sums are made from per-warp sums (a warp's 32 pieces lie in one
    // row), added in a fixed order so that every run rounds alike.
    const uint4* xv = static_cast<const uint4*>(op.x);
    const int total = rows * pieces;
    uint4 v[R];
    if (F && in) {
      poll_pieces<R>(in, 0, total, epoch, poll_ns, v);  // total <= kFlagPieces * kThreads (plan_flagged)
    } else {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const int i = threadIdx.x + r * kThreads;
        if (i < total) v[r] = __ldcg(xv + i);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if (threadIdx.x - lane + r * kThreads >= total) break;  // whole warps: total is a multiple of 32
      const float ss = warp_sum(dot8<T>(v[r], v[r]));
      if (lane == 0) sc.warp_ss[r][warp] = ss;
    }
    fine_stamp(stamps, 16);
    csync();
    fine_stamp(stamps, 17);
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int i = threadIdx.x + r * kThreads;
      if (i >= total) break;
      const int n = fast_div(i, by_pieces), c = i - n * pieces;
      float ss = 0.0f;
      for (int q = n * pieces; q < (n + 1) * pieces; q += 32) ss += sc.warp_ss[q / kThreads][q % kThreads / 32];
      const float rstd = rsqrtf(ss / static_cast<float>(k) + op.eps);
      const uint4 g = reinterpret_cast<const uint4*>(nws)[c];
      T* vt = reinterpret_cast<T*>(&v[r]);
      const T* gt = reinterpret_cast<const T*>(&g);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[e] = from_f<T>(gemv_input<T, kNorm>(to_f(vt[e]), to_f(gt[e]), rstd));
      reinterpret_cast<uint4*>(xs + n * padded(k))[c] = v[r];
    }
    fine_stamp(stamps, 18);
    csync();
    fine_stamp(stamps, 19);
    return;
  }
  if (norm) {
    for (int n = warp; n < rows; n += kWarps) {
      float ss = 0.0f;
      for (int c = lane; c < pieces; c += 32) {
        const uint4 v = __ldcg(reinterpret_cast<const uint4*>(x + int64_t{n} * k) + c);
        ss += dot8<T>(v, v);
      }
      ss = warp_sum(ss);
      if (lane == 0) sc.rstd[n] = rsqrtf(ss / static_cast<float>(k) + op.eps);
    }
    csync();
  }
  for (int i = threadIdx.x; i < rows * pieces; i += kThreads) {
    const int n = i / pieces, c = i % pieces;
    uint4 v = __ldcg(reinterpret_cast<const uint4*>(x + int64_t{n} * k) + c);
    if (norm) {
      const uint4 g = reinterpret_cast<const uint4*>(nws)[c];
      T* vt = reinterpret_cast<T*>(&v);
      const T* gt = reinterpret_cast<const T*>(&g);
#pragma unroll
      for (int e = 0; e < 8; ++e) vt[e] = from_f<T>(gemv_input<T, kNorm>(to_f(vt[e]), to_f(gt[e]), sc.rstd[n]));
    }
    reinterpret_cast<uint4*>(xs + n * padded(k))[c] = v;
  }
  fine_stamp(stamps, 18);
  csync();
  fine_stamp(stamps, 19);
}

// kAdd: the residual value this thread's output adds to (thread r * N + n:
// row s.r0 + r, input row n, as gemv_rows splits them), fetched ahead of
// the dot products instead of one more trip to L2 at the end.
// In a flagged program, from the flagged output of the op that wrote it
// last where that op is in the program.
template <class T, int N, bool F>
__device__ __forceinline__ float residual_at(const DecodeProgram& p, const DecodeOp& op, const GemvSpan& s,
                                             uint32_t epoch) {
  const int outs = (s.r1 - s.r0) * N, r = threadIdx.x / N, n = threadIdx.x % N;
  if (threadIdx.x >= outs || n >= p.rows) return 0.0f;
  const int64_t at = int64_t{n} * op.m + s.r0 + r;
  if (F && op.link.old_src >= 0) {
    const Word w = poll_word(p.flags + p.ops[op.link.old_src].link.region + at / 2, epoch, p.poll_ns);
    return to_f(from_bits<T>(static_cast<uint32_t>(w) >> (at % 2 * 16)));
  }
  return to_f(__ldcg(static_cast<const T*>(op.out) + at));
}

// What a GEMV op can work out before the grid barrier in front of it: the
// plan of its first load, the input staging's divisor, and for kAdd the
// residual values (written before an earlier barrier, unless by the op
// right before).
struct GemvPrep {
  RowsPlan plan;
  uint32_t by_pieces;
  bool pre;        // kAdd with a thread per output: the residual values are fetched ahead
  bool old_ready;  // ... and `old` already holds this thread's
  float old;
};

template <class T, int N, bool F>
__device__ __forceinline__ GemvPrep gemv_prepare(const DecodeProgram& p, int i, const GemvSpan& s, uint32_t epoch) {
  const DecodeOp& op = p.ops[i];
  GemvPrep g;
  g.by_pieces = div_magic(op.k / 8);
  g.plan = plan_rows(op.k, op.kind == kOpGemvNormSwiglu, s.r0, min(s.rows_per_load, s.r1 - s.r0), p.rows);
  g.pre = op.kind == kOpGemvAdd && (s.r1 - s.r0) * N <= kThreads;
  // Flagged: polled now unless the op right before wrote them (that would
  // wait for it here instead of while staging).
  const bool polled = F && op.link.old_src >= 0;
  g.old_ready = g.pre && i > 0 && (polled ? op.link.old_src != i - 1 : p.ops[i - 1].out != op.out);
  g.old = g.old_ready ? residual_at<T, N, F>(p, op, s, epoch) : 0.0f;
  return g;
}

// One copy for the three modes (a runtime mode; one call site): each op runs code the
// op before it ran, and finds it in the instruction cache. A copy per mode
// (templates) missed there at every op: ~2,000 cycles of fetch stalls in an
// op's first pass, against ~1,700 for its whole second pass.
template <class T, int N, bool F>
__device__ __forceinline__ void gemv_op(const DecodeProgram& p, int i, Ring& ring, const GemvPrep& prep, T* xs,
                                        Scratch& sc, uint32_t epoch) {
  const DecodeOp& op = p.ops[i];
  const int mode = op.kind == kOpGemvNormSwiglu ? kNormSwiglu : op.kind == kOpGemvAdd ? kAdd : kNorm;
  // The LM head: f32 logits for work after the program, no flagged words.
  const bool head = op.kind == kOpGemvNormHead;
  const bool norm = mode != kAdd;
  const GemvSpan& s = ring.spans[i];
  if (s.loads == 0) return;
  // Flagged, the values the op right before wrote are polled once the
  // input (which comes later or at the same time) is staged.
  const bool late = prep.pre && !prep.old_ready;
  float old = late && !F ? residual_at<T, N, F>(p, op, s, epoch) : prep.old;
  // The first load starts with the norm weights.
  const unsigned char* first_load = front(ring);
  const T* nws = reinterpret_cast<const T*>(first_load);
  fine_stamp(ring.op_stamps, 20);
  Word* flags = F ? p.flags + op.link.region : nullptr;
  const bool plain = !flags || (op.link.bits & kWritePlain);
  const Word* in = F && op.link.src >= 0 ? p.flags + p.ops[op.link.src].link.region : nullptr;
  stage_input<T, N, F>(op, p.rows, norm, prep.by_pieces, xs, nws, sc, ring.op_stamps, in, epoch, p.poll_ns);
  if (F && late) old = residual_at<T, N, F>(p, op, s, epoch);
  if (prep.pre && threadIdx.x < (s.r1 - s.r0) * N) sc.old[threadIdx.x] = old;  // read after gemv_load's csync
  trace_stamp(p, i, 1);
  release_producer(p, ring);
  // A load's outputs from its partial sums in sc.part.
  const auto epilogue = [&](const RowsPlan& pl, unsigned long long* stamps) {
    const float* olds = prep.pre ? sc.old + (pl.first - s.r0) * N : nullptr;
    gemv_epilogue<T, N>(mode == kNormSwiglu, pl, p.rows, sc, stamps,
                        [&](int r, int n, float gate, float up, bool valid) {
                          const int row = pl.first + r;
                          T* o = static_cast<T*>(op.out) + int64_t{n} * op.m + row;
                          const T* bias = static_cast<const T*>(op.bias);
                          T value{};
                          if (valid) {
                            float v;
                            if (mode == kAdd) {
                              v = gemv_value<T, kAdd>(gate, up, bias, row, op.m,
                                                      olds ? olds[threadIdx.x] : to_f(__ldcg(o)));
                            } else if (mode == kNormSwiglu) {
                              v = gemv_value<T, kNormSwiglu>(gate, up, bias, row, op.m, 0.0f);
                            } else {
                              v = gemv_value<T, kNorm>(gate, up, bias, row, op.m, 0.0f);
                            }
                            value = from_f<T>(v);
                            fine_stamp(stamps, 14);
                            if (head) {
                              static_cast<float*>(op.out)[int64_t{n} * op.m + row] = v;
                            } else if (plain) {
                              *o = value;
                            }
                          }
                          // Rows in pairs (the span and the loads start at even rows).
                          if (F && !head)
                            put_pair(flags + (int64_t{n} * op.m + row) / 2, value, N, valid, r % 2 == 0, epoch);
                        });
  };
  for (int j = 0; j < s.loads; ++j) {
    const T* ws = reinterpret_cast<const T*>(j == 0 ? first_load + (norm ? op.k * 2 : 0) : front(ring));
    const int first = s.r0 + j * s.rows_per_load;
    const RowsPlan pl =
        j == 0 ? prep.plan : plan_rows(op.k, mode == kNormSwiglu, first, min(s.rows_per_load, s.r1 - first), p.rows);
    unsigned long long* stamps = j == 0 ? ring.op_stamps : nullptr;
    gemv_load<T, N>(pl, ws, xs, sc, stamps, [&] { epilogue(pl, stamps); });
    if (j == s.loads - 1) hold_producer(p, ring);
    pop(ring);
    if (j == 0) fine_stamp(ring.op_stamps, 13);
  }
}

// --- attention ops ---

// The item's q heads (norm + rope, in T as the prepare kernel writes them;
// the scores apply the scale) into sc.q; where the item holds the row's new
// position, its K (norm + rope) and V rows into fresh_k/v and the pools.
template <class T, bool F>
__device__ __forceinline__ void attn_prepare(const DecodeProgram& p, const DecodeOp& op, const AttnItem& it,
                                             const T* q_norm, const T* k_norm, Scratch& sc, T* fresh_k, T* fresh_v,
                                             uint32_t epoch) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim, group = it.group;
  const bool fresh_here = it.p1 == it.visible;
  const T* src = static_cast<const T*>(op.x) + int64_t{it.row} * (p.heads + 2 * p.kv_heads) * hd;
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
    if (F && op.link.src >= 0) {
      // From the qkv op's flagged output (row-major like op.x).
      const int64_t at = int64_t{it.row} * (p.heads + 2 * p.kv_heads) * hd + col;
      poll_lane_words<kMaxHd / 64>(p.flags + p.ops[op.link.src].link.region + at / 2, hd / 2, epoch, p.poll_ns,
                                   reinterpret_cast<uint32_t*>(head));
    } else {
      for (int j = lane; j < hd; j += 32) head[j] = __ldcg(src + col + j);
    }
    __syncwarp();
    if (job < group) {
      T* dst = reinterpret_cast<T*>(sc.q) + job * hd;
      norm_rope_head(head, q_norm, op.eps, rot, hd, [&](int j, float v) { dst[j] = from_f<T>(v); });
    } else if (job == group) {
      norm_rope_head(head, k_norm, op.eps, rot, hd, [&](int j, float v) { fresh_k[j] = from_f<T>(v); });
    } else {
      for (int j = lane; j < hd; j += 32) fresh_v[j] = head[j];
    }
  }
  csync();
  if (fresh_here) {
    const int64_t at = int64_t{p.slots[it.row]} * p.kv_heads * hd + it.kvh * hd;
    for (int j = threadIdx.x; j < hd; j += kThreads) {
      static_cast<T*>(op.k_pool)[at + j] = fresh_k[j];
      static_cast<T*>(op.v_pool)[at + j] = fresh_v[j];
    }
  }
}

// Online-softmax merge of n chunk states (maxima cm, sums cl, the values'
// words w) into one element's running state (mx, l, val).
template <int B>
__device__ __forceinline__ void merge_batch(float& mx, float& l, float& val, const float* cm, const float* cl,
                                            const Word (&w)[B], int n) {
  float bm = mx;
#pragma unroll
  for (int c = 0; c < B; ++c)
    if (c < n) bm = fmaxf(bm, cm[c]);
  const float rescale = __expf(mx - bm);
  l *= rescale;
  val *= rescale;
#pragma unroll
  for (int c = 0; c < B; ++c)
    if (c < n) {
      const float e = __expf(cm[c] - bm);
      l += e * cl[c];
      val += e * __uint_as_float(static_cast<uint32_t>(w[c]));
    }
  mx = bm;
}

// A flagged program's split attention: chunks 1.. write their state (m, l,
// the unscaled output) as flagged f32 words to the op's partial region
// (after its output region, plan_flagged), and chunk 0's block merges
// them into its own as each lands, then emits the output. No fence, no
// counter: a word is this op's when it carries the epoch (each attention
// op has its own region, so an earlier layer's words never pass).
template <class T, class Emit>
__device__ __forceinline__ void attn_merge_flagged(const DecodeProgram& p, const DecodeOp& op, const AttnItem& it,
                                                   Scratch& sc, const float (&acc)[kPasses], uint32_t epoch,
                                                   Emit emit) {
  const int hd = p.head_dim, group = it.group, stride = hd + 2;
  Word* base = p.flags + op.link.region + int64_t{p.rows} * p.heads * hd / 2 +
               (int64_t{it.row} * p.heads + it.kvh * group) * p.splits * stride;
  if (it.chunk != 0) {
#pragma unroll
    for (int h = 0; h < kPasses; ++h) {
      const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd), d = t - g * hd;
      if (g >= group) break;
      Word* part = base + (int64_t{g} * p.splits + it.chunk) * stride;
      if (d == 0) {
        put_word(part, flag_word(epoch, __float_as_uint(sc.m[g])));
        put_word(part + 1, flag_word(epoch, __float_as_uint(sc.l[g])));
      }
      put_word(part + 2 + d, flag_word(epoch, __float_as_uint(acc[h])));
    }
    return;
  }
  // Chunk 0 merges kMergeBatch chunks per round trip: each thread polls its
  // element's value in every chunk of the batch, and one thread per (head,
  // chunk, m or l) polls that word into shared memory, all at once; after a
  // block barrier each thread merges its element. (Polling m and l per
  // thread as well took 4 chunks a round trip before registers spilled: at
  // 16 chunks, four dependent round trips on the step's critical path.)
  // Loops, not unrolled copies: the kernel's code is larger than the
  // instruction cache, and a copy per pass slowed every op (measured).
#pragma unroll 1
  for (int h = 0; h < kPasses && h * kThreads < group * hd; ++h) {
    const int t = threadIdx.x + h * kThreads, head = fast_div(t, it.by_hd), g = min(head, group - 1), d = t - g * hd;
    float mx = sc.m[g], l = sc.l[g], val = acc[0];
#pragma unroll
    for (int q = 1; q < kPasses; ++q)
      if (q == h) val = acc[q];
#pragma unroll 1
    for (int c0 = 1; c0 < it.used; c0 += kMergeBatch) {
      const int n = min(kMergeBatch, it.used - c0);
      const bool ml = threadIdx.x < 2 * n * group;
      const int mg = threadIdx.x / (2 * n), mc = threadIdx.x / 2 % n;
      const Word* ml_at = ml ? base + (int64_t{mg} * p.splits + c0 + mc) * stride + threadIdx.x % 2 : nullptr;
      Word wv[kMergeBatch], wml = 0;
      poll_column<kMergeBatch>(base + (int64_t{g} * p.splits + c0) * stride + 2 + d, stride, head < group ? n : 0,
                               ml_at, wv, wml, epoch, p.poll_ns);
      if (ml) sc.merge_ml[threadIdx.x % 2][mg][mc] = __uint_as_float(static_cast<uint32_t>(wml));
      csync();
      if (head < group) merge_batch<kMergeBatch>(mx, l, val, sc.merge_ml[0][g], sc.merge_ml[1][g], wv, n);
      csync();  // every thread is done with the batch's m and l
    }
    emit(t, head < group, val / l);
  }
}

// The item's result: the output itself when the row's positions fit one
// chunk; else its partial state, and the last chunk of (row, kv head) to
// finish merges them all.
template <class T, bool F>
__device__ __forceinline__ void attn_finish(const DecodeProgram& p, const DecodeOp& op, int op_index,
                                            const AttnItem& it, Scratch& sc, const float (&acc)[kPasses],
                                            uint32_t epoch) {
  const int hd = p.head_dim, group = it.group;
  const int64_t first = int64_t{it.row} * p.heads * hd + it.kvh * group * hd;
  T* out = static_cast<T*>(op.out) + first;
  Word* flags = F ? p.flags + op.link.region : nullptr;
  const bool plain = !flags || (op.link.bits & kWritePlain);
  // Output element t (head g, element d) of the item's heads; every thread
  // of a warp comes here together (put_pair shuffles).
  const auto emit = [&](int t, bool valid, float v) {
    const T value = from_f<T>(v);
    if (valid && plain) out[t] = value;
    // t and t + 1 are one word (head_dim and first are even).
    if (F) put_pair(flags + (first + t) / 2, value, 1, valid, t % 2 == 0, epoch);
  };
  if (it.used == 1) {
#pragma unroll
    for (int h = 0; h < kPasses; ++h) {
      const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd);
      const bool valid = g < group;
      emit(t, valid, valid ? acc[h] / sc.l[g] : 0.0f);
    }
    return;
  }
  if (F && p.flag_merge) return attn_merge_flagged<T>(p, op, it, sc, acc, epoch, emit);
  const int stride = hd + 2;
  float* base = p.partial + (int64_t{it.row} * p.heads + it.kvh * group) * p.splits * stride;
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd), d = t - g * hd;
    if (g >= group) break;
    float* part = base + (int64_t{g} * p.splits + it.chunk) * stride;
    if (d == 0) {
      part[0] = sc.m[g];
      part[1] = sc.l[g];
    }
    part[2 + d] = acc[h];
  }
  __threadfence();
  csync();
  int32_t* counter = p.counters + it.row * p.kv_heads + it.kvh;
  if (threadIdx.x == 0) sc.ticket = atomicAdd(counter, 1);
  csync();
  if (sc.ticket != it.used - 1) return;
  __threadfence();
  if (F && threadIdx.x == 0) {
    // The next attention op's chunks count on this counter, and may start
    // as soon as this op's output is seen (no barrier between): the reset
    // is visible first (the csync before the output keeps it after).
    *counter = 0;
    __threadfence();
  }
  if (threadIdx.x == 0 && p.trace)
    p.trace[(int64_t{op_index} * gridDim.x + blockIdx.x) * kTraceStamps + 12] = clock64();
  // The last chunk to finish merges them all: each thread one output
  // element, an online merge over 8 chunks at a time with all their loads
  // in flight together (the merge is on the step's critical path, and L2
  // is busy with the weight stream).
  constexpr int kBatch = 8;
  float merged[kPasses] = {};
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd), d = t - g * hd;
    if (g >= group) break;
    const float* part = base + int64_t{g} * p.splits * stride;
    float mx = -INFINITY, l = 0.0f, val = 0.0f;
    for (int c0 = 0; c0 < it.used; c0 += kBatch) {
      float cm[kBatch], cl[kBatch], cv[kBatch];
#pragma unroll
      for (int c = 0; c < kBatch; ++c) {
        const bool in = c0 + c < it.used;
        const float* pc = part + (c0 + c) * stride;
        cm[c] = in ? __ldcg(pc) : -INFINITY;
        cl[c] = in ? __ldcg(pc + 1) : 0.0f;
        cv[c] = in ? __ldcg(pc + 2 + d) : 0.0f;
      }
      float bm = mx;
#pragma unroll
      for (int c = 0; c < kBatch; ++c) bm = fmaxf(bm, cm[c]);
      const float rescale = __expf(mx - bm);
      l *= rescale;
      val *= rescale;
#pragma unroll
      for (int c = 0; c < kBatch; ++c) {
        const float w = __expf(cm[c] - bm);
        l += w * cl[c];
        val += w * cv[c];
      }
      mx = bm;
    }
    merged[h] = val / l;
  }
  if (F) csync();  // after thread 0's reset
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads;
    emit(t, fast_div(t, it.by_hd) < group, merged[h]);
  }
  if (!F && threadIdx.x == 0) *counter = 0;
}

template <class T, bool F>
__device__ __forceinline__ void attention_op(const DecodeProgram& p, int op_index, Ring& ring, Scratch& sc, T* fresh,
                                             uint32_t epoch) {
  const DecodeOp& op = p.ops[op_index];
  const AttnItem& it = *ring.item;
  if (!it.active) return;
  T* fresh_k = fresh;
  T* fresh_v = fresh + kMaxHd;
  // The first load starts with q_norm and k_norm.
  const unsigned char* first_load = front(ring);
  const T* q_norm = op.nw ? reinterpret_cast<const T*>(first_load) : nullptr;
  const T* k_norm = op.w ? reinterpret_cast<const T*>(first_load) + p.head_dim : nullptr;
  attn_prepare<T, F>(p, op, it, q_norm, k_norm, sc, fresh_k, fresh_v, epoch);
  trace_stamp(p, op_index, 1);
  release_producer(p, ring);
  if (threadIdx.x < kMaxGroup) {
    sc.m[threadIdx.x] = -INFINITY;
    sc.l[threadIdx.x] = 0.0f;
  }
  float acc[kPasses] = {};
  for (int j = 0; j < it.loads; ++j) {
    int q0, q1, cached;
    attn_sub(it, j, q0, q1, cached);
    const T* kv = reinterpret_cast<const T*>(j == 0 ? first_load + prefix_bytes(p, op) : front(ring));
    attn_step<T>(p, it, kv, q1 - q0, cached, kv_rows(p, cached), fresh_k, fresh_v, sc, acc,
                 j == 0 ? ring.op_stamps : nullptr);
    if (j == 0) fine_stamp(ring.op_stamps, 10);
    if (j == it.loads - 1) hold_producer(p, ring);
    pop(ring);
  }
  fine_stamp(ring.op_stamps, 11);
  attn_finish<T, F>(p, op, op_index, it, sc, acc, epoch);
}

// --- the kernel ---

template <class T, int N, bool F>
__global__ void __launch_bounds__(kBlockThreads, 1)
    decode_kernel(const __grid_constant__ DecodeProgram params, const __grid_constant__ KvMaps maps, uint32_t xs_bytes,
                  uint32_t ring_bytes) {
  // The program is read over and over at run-time indices: from shared
  // memory, not through the constant cache (which misses on 10+ KB).
  __shared__ __align__(16) DecodeProgram p;
  {
    const uint4* src = reinterpret_cast<const uint4*>(&params);
    uint4* dst = reinterpret_cast<uint4*>(&p);
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(DecodeProgram) / 16); i += kBlockThreads) dst[i] = src[i];
    __syncthreads();
  }
  extern __shared__ __align__(128) uint4 smem[];
  __shared__ Scratch sc;
  // fresh K, fresh V, then a staging row per warp job (attn_prepare).
  __shared__ __align__(16) T fresh[(kMaxGroup + 4) * kMaxHd];
  T* xs = reinterpret_cast<T*>(smem);
  __shared__ RingShared ring_sh;
  __shared__ AttnItem item;
  __shared__ GemvSpan spans[kMaxDecodeOps];
  if (threadIdx.x == 0) {
    item = p.heads > 0 ? make_attn_item(p) : AttnItem{};
    init_ring(ring_sh);
  }
  __syncthreads();
  // The rotary angles of each row: the same in every layer.
  if (p.heads > 0)
    for (int i = threadIdx.x; i < p.rows * p.head_dim / 2; i += kBlockThreads) {
      const int n = i / (p.head_dim / 2), j = i % (p.head_dim / 2);
      sincosf(static_cast<float>(p.positions[n]) * p.inv_freq[j], &sc.rot_sn[n][j], &sc.rot_cs[n][j]);
    }
  // Each block's share of each op, worked out once (divisions are not cheap).
  for (int i = threadIdx.x; i < p.num_ops; i += kBlockThreads)
    spans[i] = p.ops[i].kind == kOpAttention ? GemvSpan{0, 0, 0, item.loads} : gemv_span(p.ops[i], F);
  __syncthreads();
  unsigned char* ring_base = reinterpret_cast<unsigned char*>(smem) + xs_bytes;
  unsigned long long* trace = p.trace ? p.trace + int64_t{blockIdx.x} * kTraceStamps : nullptr;
  if (threadIdx.x >= kThreads) return produce<T>(p, maps, ring_sh, ring_base, ring_bytes, spans, item, trace);

  Ring ring{ring_base, ring_bytes, 0, &ring_sh, &item, spans, trace, 0, nullptr};
  uint32_t passes = 0;
  // This launch's flag value (leave_grid counts launches; none runs now).
  const uint32_t epoch = F ? *static_cast<volatile uint32_t*>(p.barrier + kEpochWord) + 1 : 0;
  for (int i = 0; i < p.num_ops; ++i) {
    const bool attention = p.ops[i].kind == kOpAttention;
    // Worked out while the last blocks are still on the op before.
    const GemvPrep prep = attention ? GemvPrep{} : gemv_prepare<T, N, F>(p, i, spans[i], epoch);
    // Flagged: ops wait for their inputs' words instead (plan_flagged).
    if (i > 0 && (!F || (p.ops[i].link.bits & kBarrierBefore)))
      grid_barrier(p.barrier, passes, trace ? trace + int64_t{i} * gridDim.x * kTraceStamps : nullptr);
    trace_stamp(p, i, 0);
    ring.op_stamps = trace ? trace + int64_t{i} * gridDim.x * kTraceStamps : nullptr;
    if (attention) {
      attention_op<T, F>(p, i, ring, sc, fresh, epoch);
    } else {
      gemv_op<T, N, F>(p, i, ring, prep, xs, sc, epoch);
    }
    trace_stamp(p, i, 2);
    if (trace && threadIdx.x == 0) trace[int64_t{i} * gridDim.x * kTraceStamps + 6] = ring.waited;
    ring.waited = 0;
  }
  leave_grid(p.barrier);
}

template <class T, int N, bool F>
void launch(const DecodeProgram& p, const KvMaps& maps, int blocks, cudaStream_t s) {
  auto kernel = decode_kernel<T, N, F>;
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
  // The ring starts and ends 128-byte aligned (K/V boxes land at such addresses).
  const uint32_t xs_bytes = round_up(static_cast<uint32_t>(N * padded(p.max_k) * 2), 128u);
  const uint32_t ring_bytes = (static_cast<uint32_t>(dynamic) - xs_bytes) / 128 * 128;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(kBlockThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(dynamic);
  cfg.stream = s;
  // Every block waits for all the others at the barriers: they must all be
  // resident at once, which a cooperative launch guarantees (or refuses).
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeCooperative;
  attr[0].val.cooperative = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  check_cuda(cudaLaunchKernelEx(&cfg, kernel, p, maps, xs_bytes, ring_bytes), "decode kernel launch");
}

template <class T, bool F>
void launch_rows(const DecodeProgram& p, const KvMaps& maps, int blocks, cudaStream_t s) {
  switch (decode_rows_bucket(p.rows)) {
    case 1:
      return launch<T, 1, F>(p, maps, blocks, s);
    case 2:
      return launch<T, 2, F>(p, maps, blocks, s);
    case 4:
      return launch<T, 4, F>(p, maps, blocks, s);
    default:
      return launch<T, 8, F>(p, maps, blocks, s);
  }
}

template <class T>
void launch_program(const DecodeProgram& p, const KvMaps& maps, int blocks, cudaStream_t s) {
  if (p.flags) return launch_rows<T, true>(p, maps, blocks, s);
  launch_rows<T, false>(p, maps, blocks, s);
}

bool aligned16(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool decode_gemv_fits(Ty t, int rows, int m, int k, bool dual, const void* x, const void* w, const void* nw) {
  if (t == Ty::F32 || rows < 1 || rows > kMaxDecodeRows || m < 1 || k < 8 || k % 8 != 0) return false;
  if (int64_t{k} * 2 * (dual ? 2 : 1) > kDecodeGroupBytes) return false;
  if (k % 32 != 0) return false;                                             // the tensor cores take k in chunks of 32
  if (int64_t{decode_rows_bucket(rows)} * padded(k) * 2 > kXsBudget) return false;  // staged input rows
  return aligned16(x) && aligned16(w) && aligned16(nw);
}

bool decode_attention_fits(Ty t, int rows, int heads, int kv_heads, int head_dim) {
  if (t == Ty::F32 || rows < 1 || rows > kMaxDecodeRows || kv_heads < 1 || heads % kv_heads != 0) return false;
  return head_dim % 8 == 0 && head_dim >= 8 && head_dim <= kMaxHd && heads / kv_heads <= kMaxGroup;
}

int decode_attention_splits(int rows, int kv_heads, int blocks) {
  return std::clamp(blocks / (rows * kv_heads), 1, kMaxMergeChunks);
}

void run_decode_program(Ty t, const DecodeProgram& p, const KvMaps& maps, int blocks, cudaStream_t s) {
  if (p.num_ops == 0) return;
  if (t == Ty::F16) {
    launch_program<__half>(p, maps, blocks, s);
  } else {
    launch_program<__nv_bfloat16>(p, maps, blocks, s);
  }
}

bool make_kv_map(CUtensorMap& map, const void* pool, int64_t slots, int kv_dim, int head_dim) {
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static const Encode encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found) !=
            cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<Encode>(fn);
  }();
  if (encode == nullptr || reinterpret_cast<uintptr_t>(pool) % 16 != 0 || kv_dim % 8 != 0 || head_dim % 8 != 0)
    return false;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(kv_dim), static_cast<cuuint64_t>(slots)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(kv_dim) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(head_dim), static_cast<cuuint32_t>(kKvBoxRows)};
  const cuuint32_t elem[2] = {1, 1};
  // 16-bit values as such (the copy moves bytes; bf16 and f16 alike).
  return encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 2, const_cast<void*>(pool), dims, strides, box, elem,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace nativelm::cuda
