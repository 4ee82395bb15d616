// The cluster decode kernel: a decode step of one row, all its layers in
// one launch, each layer in two grid-wide steps instead of the op-list
// kernel's five (decode_kernel.cu).
//
// Why: at batch 1 the op-list kernel spends a layer on five chains of grid
// barrier, input read from L2 and dot products (~30 us against ~10 us of
// weight traffic). Here a cluster of C blocks (Hopper thread-block
// clusters, up to 16 SMs that read each other's shared memory) owns one kv
// head, and what used to need the whole grid between two ops is done
// inside the cluster:
//
//   attention step: the residual and its RMSNorm; the q/k/v rows of the kv
//     head, C blocks' share each; the cluster gathers them (distributed
//     shared memory); every block makes the q heads and the new K/V row
//     (norm + rope) itself; each block one chunk of the cached positions;
//     the cluster merges the chunks; then block j multiplies rows
//     [j H/C, (j+1) H/C) of o_proj, restricted to the kv head's columns,
//     by the head group's output: a partial sum of the o projection.
//   MLP step: the residual plus the partial sums of all clusters (a fixed
//     order, so every run rounds alike), its RMSNorm; gate/up rows of the
//     cluster's share of the intermediate, C shares; gathered in the
//     cluster; down_proj rows [j H/C, (j+1) H/C) restricted to the
//     cluster's columns: a partial sum of the down projection.
//
// Clusters of 16 rarely fit 8 kv heads on an H100 (7 at once), and clusters
// of 8 for the kv heads alone leave half the SMs idle. So there are as many
// clusters as fit (15 of 8 on an H100): the first kv_heads own a kv head
// and do the attention step, all of them share the MLP step's
// intermediate. The others spend the attention step filling their rings
// with MLP weights.
//
// A grid barrier separates the two steps. Each step writes its partial
// sums [cluster][hidden] to one of two buffers, and the residual after it
// (rounded as the add kernel rounds) a slice per block to one of two
// buffers; the next step adds them up again in every block, since every
// block needs the whole normalised residual anyway. After the last layer
// the residual goes back to the program's residual buffer.
//
// Weights and cached K/V rows stream through the same shared-memory ring
// as in the op-list kernel (decode_device.cuh), a producer warp ahead of
// the compute threads.
#include <algorithm>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_device.cuh"
#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemv_common.cuh"
#include "backend/cuda/rope.cuh"

namespace nativelm::cuda {

namespace {

using namespace decode;

constexpr int kMaxCluster = 16;
constexpr int kMaxMine = 512;  // a block's q/k/v or gate/up rows

// What block (cluster c, rank j) does in every layer.
struct Share {
  int c, j, C, U;
  bool attn;  // its cluster owns a kv head (the first kv_heads clusters)
  int hidden, inter, group, hd, qkv_rows;
  int i0, inter_c;                       // its cluster's share of the intermediate: [i0, i0 + inter_c)
  int q0, q1;                            // its q/k/v rows, counted over the kv head's q heads, then k, then v
  int a0, a1;                            // its gate/up rows, counted inside the cluster's inter_c
  int h0, h1;                            // its o / down output rows
  int s0, s1;                            // the residual slice it writes back (even bounds)
  int rpl_qkv, rpl_gu, rpl_o, rpl_down;  // rows per load
  AttnItem item;
};

__host__ __device__ __forceinline__ int rows_per_load(const DecodeProgram& p, int row_bytes) {
  return max(1, min(kMaxLoadRows, p.load_bytes / row_bytes));
}
__device__ __forceinline__ int loads_of(int rows, int per_load) { return (rows + per_load - 1) / per_load; }

// The intermediate goes to the clusters in pieces of 32 (the tensor-core
// GEMV's k), evenly; or with p.balance, fewer to the clusters that own a
// kv head, as they also stream the attention step's weights: the split
// that gives every block about the same bytes per layer (measured slower:
// the other clusters' MLP step becomes the longer one). Pieces of the kv
// heads' clusters together:
__host__ __device__ __forceinline__ int attention_pieces(const DecodeProgram& p) {
  const int64_t n = p.ops[3].m / 32, K = p.kv_heads, U = p.clusters, H = p.ops[0].k;
  if (U <= K || !p.balance) return static_cast<int>(n * K / U);
  const int64_t attention = (int64_t{p.heads + 2 * p.kv_heads} + p.heads) * p.head_dim * H * 2 / K;  // per cluster
  const int64_t piece = 32 * 3 * H * 2;  // gate, up and down columns
  const int64_t x = (n * piece - (U - K) * attention + U * piece / 2) / (U * piece);
  // At least one piece for every cluster.
  const int64_t most = (n - (U - K)) / K;
  return static_cast<int>(K * (x < 1 ? 1 : x > most ? most : x));
}

// Cluster c's share of the intermediate, [i0, i0 + count).
__host__ __device__ __forceinline__ void inter_share(const DecodeProgram& p, int c, int& i0, int& count) {
  const int n = p.ops[3].m / 32, K = p.kv_heads, U = p.clusters, a = attention_pieces(p);
  auto bound = [&](int c) { return c <= K ? c * a / K : a + (c - K) * (n - a) / (U - K); };
  i0 = 32 * bound(c);
  count = 32 * bound(c + 1) - i0;
}

__device__ Share make_share(const DecodeProgram& p) {
  Share s;
  s.C = p.cluster;
  s.U = p.clusters;
  s.c = blockIdx.x / s.C;
  s.j = blockIdx.x % s.C;
  s.attn = s.c < p.kv_heads;
  s.hidden = p.ops[0].k;
  s.inter = p.ops[3].m;
  inter_share(p, s.c, s.i0, s.inter_c);
  s.group = p.heads / p.kv_heads;
  s.hd = p.head_dim;
  s.qkv_rows = (s.group + 2) * s.hd;
  s.q0 = s.qkv_rows * s.j / s.C;
  s.q1 = s.qkv_rows * (s.j + 1) / s.C;
  s.a0 = s.inter_c * s.j / s.C;
  s.a1 = s.inter_c * (s.j + 1) / s.C;
  s.h0 = s.hidden * s.j / s.C;
  s.h1 = s.hidden * (s.j + 1) / s.C;
  s.s0 = 2 * static_cast<int>(int64_t{s.hidden / 2} * blockIdx.x / gridDim.x);  // in pairs (residual_pair)
  s.s1 = 2 * static_cast<int>(int64_t{s.hidden / 2} * (blockIdx.x + 1) / gridDim.x);
  s.rpl_qkv = rows_per_load(p, s.hidden * 2);
  s.rpl_gu = rows_per_load(p, s.hidden * 4);
  s.rpl_o = rows_per_load(p, s.group * s.hd * 2);
  s.rpl_down = rows_per_load(p, s.inter_c * 2);
  // Attention: chunk j of the row's positions (the last, made this step,
  // is in the last non-empty chunk); an empty chunk still takes one load,
  // the q/k norm weights.
  AttnItem& it = s.item;
  it = AttnItem{};
  it.group = s.group;
  it.by_hd = div_magic(s.hd);
  it.kvh = s.attn ? s.c : 0;
  it.chunk = s.j;
  const SeqInfo si = p.seqs[p.row_seq[0]];
  it.visible = si.kv_len;
  it.page_off = si.page_off;
  const int chunk = max((it.visible + s.C - 1) / s.C, max(p.min_chunk, 1));
  it.p0 = min(it.visible, s.j * chunk);
  it.p1 = min(it.visible, it.p0 + chunk);
  it.active = it.p0 < it.p1;
  it.loads = max(1, loads_of(it.p1 - it.p0, kSubChunk));
  return s;
}

// Weight row of q/k/v row v of the block's kv head (q heads of the group, k, v).
__device__ __forceinline__ int qkv_row(const DecodeProgram& p, const Share& s, int v) {
  const int q = s.group * s.hd;
  if (v < q) return s.c * q + v;
  if (v < q + s.hd) return p.heads * s.hd + s.c * s.hd + (v - q);
  return (p.heads + p.kv_heads) * s.hd + s.c * s.hd + (v - q - s.hd);
}

// --- the producer ---

// One load: when prefix > 0, a_bytes of a at its start and b_bytes of b
// at its middle (either may be null), then `count` rows, row r from
// src(r), row_bytes each, to rows dst_stride bytes apart.
template <class Src>
__device__ __forceinline__ void feed(Feeder& f, uint32_t prefix, const void* a, uint32_t a_bytes, const void* b,
                                     uint32_t b_bytes, int count, uint32_t row_bytes, uint32_t dst_stride, Src src) {
  const int lane = threadIdx.x % 32;
  uint64_t* bar;
  unsigned char* dst = f.reserve(prefix + count * dst_stride, bar);
  const uint32_t pa = prefix && a ? a_bytes : 0u, pb = prefix && b ? b_bytes : 0u;
  if (lane == 0) bar_expect(bar, pa + pb + count * row_bytes);
  __syncwarp();
  if (lane == 0 && pa) bulk_copy(dst, a, pa, bar);
  if (lane == 1 && pb) bulk_copy(dst + prefix / 2, b, pb, bar);
  dst += prefix;
  for (int r = lane; r < count; r += 32) bulk_copy(dst + r * dst_stride, src(r), row_bytes, bar);
  __syncwarp();
}

// The attention step's loads of one layer (clusters that own a kv head).
template <class T>
__device__ void produce_attention(const DecodeProgram& p, const Share& s, const DecodeOp* ops, Feeder& f) {
  const int H = s.hidden, hd = s.hd;
  const T* w_qkv = static_cast<const T*>(ops[0].w);
  for (int j = 0; j < loads_of(s.q1 - s.q0, s.rpl_qkv); ++j) {
    const int first = s.q0 + j * s.rpl_qkv, count = min(s.rpl_qkv, s.q1 - first);
    feed(f, j == 0 ? H * 2 : 0, ops[0].nw, H * 2, nullptr, 0, count, H * 2, padded(H) * 2,
         [&](int r) { return w_qkv + int64_t{qkv_row(p, s, first + r)} * H; });
  }
  const DecodeOp& at = ops[1];
  const int kv_dim = p.kv_heads * hd;
  for (int j = 0; j < s.item.loads; ++j) {
    int q0, q1, cached;
    attn_sub(s.item, j, q0, q1, cached);
    // The K rows, then the V rows: 2 * cached copies of one row each.
    feed(f, j == 0 ? 4 * hd : 0, at.nw, hd * 2, at.w, hd * 2, 2 * cached, hd * 2, hd * 2, [&](int r) {
      const int pos = q0 + (r < cached ? r : r - cached);
      const int64_t slot = int64_t{p.pages[s.item.page_off + pos / p.page_size]} * p.page_size + pos % p.page_size;
      return static_cast<const T*>(r < cached ? at.k_pool : at.v_pool) + slot * kv_dim + s.c * hd;
    });
  }
  const T* w_o = static_cast<const T*>(ops[2].w);
  const int o_k = s.group * hd;
  for (int j = 0; j < loads_of(s.h1 - s.h0, s.rpl_o); ++j) {
    const int first = s.h0 + j * s.rpl_o, count = min(s.rpl_o, s.h1 - first);
    feed(f, 0, nullptr, 0, nullptr, 0, count, o_k * 2, padded(o_k) * 2,
         [&](int r) { return w_o + int64_t{first + r} * ops[2].k + s.c * o_k; });
  }
}

// Every load of every layer, in the order the compute threads use them.
template <class T>
__device__ void produce_layers(const DecodeProgram& p, const Share& s, Feeder f) {
  const int H = s.hidden;
  for (int l = 0; l < p.num_ops / 5; ++l) {
    const DecodeOp* ops = p.ops + 5 * l;
    if (s.attn) produce_attention<T>(p, s, ops, f);
    const T* w_gu = static_cast<const T*>(ops[3].w);
    for (int j = 0; j < loads_of(s.a1 - s.a0, s.rpl_gu); ++j) {
      const int first = s.i0 + s.a0 + j * s.rpl_gu, count = min(s.rpl_gu, s.i0 + s.a1 - first);
      feed(f, j == 0 ? H * 2 : 0, ops[3].nw, H * 2, nullptr, 0, 2 * count, H * 2, padded(H) * 2,
           [&](int r) { return w_gu + int64_t{r < count ? first + r : s.inter + first + r - count} * H; });
    }
    const T* w_d = static_cast<const T*>(ops[4].w);
    for (int j = 0; j < loads_of(s.h1 - s.h0, s.rpl_down); ++j) {
      const int first = s.h0 + j * s.rpl_down, count = min(s.rpl_down, s.h1 - first);
      feed(f, 0, nullptr, 0, nullptr, 0, count, s.inter_c * 2, padded(s.inter_c) * 2,
           [&](int r) { return w_d + int64_t{first + r} * s.inter + s.i0; });
    }
  }
}

// --- the cluster ---

// Owner and index of element e of n elements split over C blocks as
// [j n / C, (j + 1) n / C).
__device__ __forceinline__ void owner_of(int e, int n, int C, int& rank, int& local) {
  rank = ((e + 1) * C - 1) / n;
  local = e - rank * n / C;
}

// Tracing (NATIVELM_DECODE_TRACE): thread 0 records the global time at
// phase `at` of the step in trace slot `slot` (the attention step of layer
// l in slot 5 l, the MLP step in 5 l + 3; tools/decode_trace.py reads them).
enum ClusterStamp : int {
  kStart = 0,     // past the grid barrier
  kStaged = 1,    // residual and its norm staged
  kProducts = 2,  // q/k/v (gate/up) rows done
  kGathered = 3,  // past the cluster barrier, rows gathered
  kPrepared = 4,  // q heads and the new K/V made
  kAttended = 5,  // the block's positions done
  kMerged = 6,    // past the second cluster barrier, chunks merged
  kDone = 7,      // partial sums stored (8, 9: grid barrier arrival and pass, as in the op-list kernel)
};
__device__ __forceinline__ unsigned long long* trace_slot(const DecodeProgram& p, int slot) {
  return p.trace ? p.trace + (int64_t{slot} * gridDim.x + blockIdx.x) * kTraceStamps : nullptr;
}
__device__ __forceinline__ void stamp(const DecodeProgram& p, int slot, int at) {
  if (p.trace == nullptr || threadIdx.x != 0) return;
  unsigned long long ns;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(ns));
  trace_slot(p, slot)[at] = ns;
}

// Meets the cluster's other blocks (their rows are written), then gathers
// the n rows they hold in `mine`, split as owner_of splits them, into dst.
template <class T>
__device__ __forceinline__ void gather(T* dst, T* mine, int n, int rank, int C, uint32_t* seen, uint32_t& phase) {
  cluster_sync(seen, rank, C, phase);
  for (int e = threadIdx.x; e < n; e += kThreads) {
    int owner, local;
    owner_of(e, n, C, owner, local);
    dst[e] = *peer(mine + local, owner);
  }
  csync();
}

// --- steps ---

// Each block's attention result for the merge: per q head of the group
// the running max and sum, and the unnormalised output.
struct ChunkState {
  float m[kMaxGroup], l[kMaxGroup];
  float acc[kMaxGroup * kMaxHd];
};

// Where step `step` puts cluster c's partial sums, and how many it writes:
// one per cluster that owns a kv head after an attention step (even),
// one per cluster after an MLP step.
__device__ __forceinline__ float* step_sums(const DecodeProgram& p, int step, int c, int H) {
  return p.sums + (int64_t{step & 1} * p.clusters + c) * H;
}
__device__ __forceinline__ int sums_of(const DecodeProgram& p, int step) {
  return step % 2 == 0 ? p.kv_heads : p.clusters;
}

template <class T>
__device__ __forceinline__ const T* residual_before(const DecodeProgram& p, int H, int step) {
  return step == 0 ? static_cast<const T*>(p.ops[0].x) : static_cast<const T*>(p.resid) + (step & 1) * H;
}

// Residual elements e and e + 1 at the start of step `step` > 0: the
// partial sums of step - 1 over the clusters (a fixed order), plus bias,
// rounded as the projection's output, added to the residual before it.
// Every load is issued before the first add: the loads are a round trip
// to L2 on the critical path.
template <class T>
__device__ __forceinline__ float2 residual_pair(const DecodeProgram& p, int H, int step, int e) {
  const T* prev = residual_before<T>(p, H, step - 1);
  const float* sums = step_sums(p, step - 1, 0, H) + e;
  const int n = sums_of(p, step - 1);
  const DecodeOp& proj = p.ops[5 * ((step - 1) / 2) + ((step - 1) % 2 == 0 ? 2 : 4)];
  const float old0 = to_f(__ldcg(prev + e)), old1 = to_f(__ldcg(prev + e + 1));
  float2 acc = make_float2(0.0f, 0.0f);
  for (int c0 = 0; c0 < n; c0 += 8) {
    float2 v[8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (c0 + i < n) v[i] = __ldcg(reinterpret_cast<const float2*>(sums + int64_t{c0 + i} * H));
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (c0 + i < n) {
        acc.x += v[i].x;
        acc.y += v[i].y;
      }
  }
  const T* bias = static_cast<const T*>(proj.bias);
  return make_float2(to_f(from_f<T>(gemv_value<T, kAdd>(acc.x, 0.0f, bias, e, H, old0))),
                     to_f(from_f<T>(gemv_value<T, kAdd>(acc.y, 0.0f, bias, e + 1, H, old1))));
}

// This block's slice of the residual at the start of step `step` > 0, to out.
template <class T>
__device__ __forceinline__ void store_slice(const DecodeProgram& p, const Share& s, int step, T* out) {
  for (int e = s.s0 + 2 * threadIdx.x; e < s.s1; e += 2 * kThreads) {
    const float2 v = residual_pair<T>(p, s.hidden, step, e);
    out[e] = from_f<T>(v.x);
    out[e + 1] = from_f<T>(v.y);
  }
}

// Step `step`'s residual into rs (and this block's slice back to global
// memory for the step after); then, once the step's first load is in (its
// norm weights first), the RMSNorm into xs. Returns that load.
template <class T>
__device__ const unsigned char* stage_residual(const DecodeProgram& p, const Share& s, int step, float eps, Ring& ring,
                                               T* rs, T* xs, Scratch& sc) {
  const int H = s.hidden, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float ss = 0.0f;
  for (int e = 2 * threadIdx.x; e < H; e += 2 * kThreads) {
    const T* x = static_cast<const T*>(p.ops[0].x);
    const float2 v =
        step == 0 ? make_float2(to_f(__ldcg(x + e)), to_f(__ldcg(x + e + 1))) : residual_pair<T>(p, H, step, e);
    rs[e] = from_f<T>(v.x);
    rs[e + 1] = from_f<T>(v.y);
    ss += v.x * v.x + v.y * v.y;
  }
  ss = warp_sum(ss);
  if (lane == 0) sc.warp_ss[0][warp] = ss;
  csync();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += sc.warp_ss[0][w];
  const float rstd = rsqrtf(total / static_cast<float>(H) + eps);
  const unsigned char* first = front(ring);
  const T* nw = reinterpret_cast<const T*>(first);
  for (int e = threadIdx.x; e < H; e += kThreads)
    xs[e] = from_f<T>(gemv_input<T, kNorm>(to_f(rs[e]), to_f(nw[e]), rstd));
  if (step > 0) {
    T* out = static_cast<T*>(p.resid) + (step & 1) * H;
    for (int e = s.s0 + threadIdx.x; e < s.s1; e += kThreads) out[e] = rs[e];
  }
  csync();
  return first;
}

// A GEMV part of a step: `total` rows in loads of per_load from the ring
// (the first at first_ws when the caller has already waited for it),
// against input xs of k; store(row, gate, up) for each.
template <class T, class Store>
__device__ __forceinline__ void gemv_part(const DecodeProgram& p, Ring& ring, const T* first_ws, const T* xs, int k,
                                          bool dual, int total, int per_load, bool last, Scratch& sc, Store store) {
  const int loads = loads_of(total, per_load);
  for (int j = 0; j < loads; ++j) {
    const T* ws = j == 0 && first_ws ? first_ws : reinterpret_cast<const T*>(front(ring));
    const int first = j * per_load, count = min(per_load, total - first);
    const RowsPlan pl = plan_rows(k, dual, first, count, 1);
    gemv_rows<T, 1>(dual, pl, ws, xs, 1, sc, nullptr, [&](int r, int, float gate, float up, bool valid) {
      if (valid) store(first + r, gate, up);
    });
    if (last && j == loads - 1) hold_producer(p, ring);
    pop(ring);
  }
}

template <class T>
__device__ void attention_step(const DecodeProgram& p, const Share& s, int l, Ring& ring, Scratch& sc, T* xs, T* rs,
                               T* mine, T* hv, T* fresh, ChunkState& st, uint32_t* seen, uint32_t& phase) {
  const DecodeOp* ops = p.ops + 5 * l;
  const int hd = s.hd, G = s.group, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // RMSNorm of the residual, then the block's q/k/v rows.
  const int slot = 5 * l;
  stamp(p, slot, kStart);
  if (!s.attn) {  // a cluster without a kv head only hands its residual slice on
    release_producer(p, ring);  // and fills its ring with the MLP step's weights meanwhile
    if (l > 0) store_slice<T>(p, s, 2 * l, static_cast<T*>(p.resid) + ((2 * l) & 1) * s.hidden);
    return;
  }
  const unsigned char* first = stage_residual<T>(p, s, 2 * l, ops[0].eps, ring, rs, xs, sc);
  release_producer(p, ring);
  stamp(p, slot, kStaged);
  const T* bias = static_cast<const T*>(ops[0].bias);
  gemv_part<T>(p, ring, reinterpret_cast<const T*>(first + s.hidden * 2), xs, s.hidden, false, s.q1 - s.q0, s.rpl_qkv,
               false, sc, [&](int r, float gate, float) {
                 mine[r] = from_f<T>(gemv_value<T, kNorm>(gate, 0.0f, bias, qkv_row(p, s, s.q0 + r), ops[0].m, 0.0f));
               });
  stamp(p, slot, kProducts);
  gather(hv, mine, s.qkv_rows, s.j, s.C, seen, phase);
  stamp(p, slot, kGathered);
  // Every block makes the group's q heads and the new K/V row itself.
  const DecodeOp& at = ops[1];
  const unsigned char* attn_first = front(ring);
  const T* q_norm = at.nw ? reinterpret_cast<const T*>(attn_first) : nullptr;
  const T* k_norm = at.w ? reinterpret_cast<const T*>(attn_first) + hd : nullptr;
  T* fresh_k = fresh;
  T* fresh_v = fresh + kMaxHd;
  Rotary rot;
#pragma unroll
  for (int i = 0; i < kRopePairs; ++i) {
    const int j = min(lane + 32 * i, kMaxHd / 2 - 1);
    rot.cs[i] = sc.rot_cs[0][j];
    rot.sn[i] = sc.rot_sn[0][j];
  }
  for (int job = warp; job < G + 2; job += kWarps) {
    if (job < G) {
      T* dst = reinterpret_cast<T*>(sc.q) + job * hd;
      norm_rope_head(hv + job * hd, q_norm, at.eps, rot, hd, [&](int j, float v) { dst[j] = from_f<T>(v); });
    } else if (job == G) {
      norm_rope_head(hv + G * hd, k_norm, at.eps, rot, hd, [&](int j, float v) { fresh_k[j] = from_f<T>(v); });
    } else {
      for (int j = lane; j < hd; j += 32) fresh_v[j] = hv[(G + 1) * hd + j];
    }
  }
  if (threadIdx.x < kMaxGroup) {
    sc.m[threadIdx.x] = -INFINITY;
    sc.l[threadIdx.x] = 0.0f;
  }
  csync();
  if (s.j == 0) {
    const int64_t to = int64_t{p.slots[0]} * p.kv_heads * hd + s.c * hd;
    for (int j = threadIdx.x; j < hd; j += kThreads) {
      static_cast<T*>(at.k_pool)[to + j] = fresh_k[j];
      static_cast<T*>(at.v_pool)[to + j] = fresh_v[j];
    }
  }
  stamp(p, slot, kPrepared);
  // This block's chunk of positions.
  const AttnItem& it = s.item;
  float acc[kPasses] = {};
  for (int j = 0; j < it.loads; ++j) {
    int q0, q1, cached;
    attn_sub(it, j, q0, q1, cached);
    const T* kv = j == 0 ? reinterpret_cast<const T*>(attn_first) + 2 * hd : reinterpret_cast<const T*>(front(ring));
    if (it.active) attn_step<T>(p, it, kv, q1 - q0, cached, cached, fresh_k, fresh_v, sc, acc, nullptr);
    pop(ring);
  }
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads;
    if (t < G * hd) st.acc[t] = acc[h];
  }
  if (threadIdx.x < G) {
    st.m[threadIdx.x] = it.active ? sc.m[threadIdx.x] : -INFINITY;
    st.l[threadIdx.x] = it.active ? sc.l[threadIdx.x] : 0.0f;
  }
  stamp(p, slot, kAttended);
  cluster_sync(seen, s.j, s.C, phase);
  // Merge the cluster's chunks: the group's output, o_proj's input.
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd);
    if (t >= G * hd) break;
    // All C loads in flight at once, then the merge (an absent rank weighs 0).
    float m[kMaxCluster], lsum[kMaxCluster], a[kMaxCluster];
#pragma unroll
    for (int r = 0; r < kMaxCluster; ++r) {
      const ChunkState* o = peer(&st, r < s.C ? r : 0);
      m[r] = r < s.C ? o->m[g] : -INFINITY;
      lsum[r] = r < s.C ? o->l[g] : 0.0f;
      a[r] = r < s.C ? o->acc[t] : 0.0f;
    }
    float mx = -INFINITY;
#pragma unroll
    for (int r = 0; r < kMaxCluster; ++r) mx = fmaxf(mx, m[r]);
    float den = 0.0f, num = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxCluster; ++r) {
      const float w = __expf(m[r] - mx);
      den += w * lsum[r];
      num += w * a[r];
    }
    xs[t] = from_f<T>(num / den);
  }
  csync();
  stamp(p, slot, kMerged);
  // This block's rows of o_proj against the group's columns.
  float* sums = step_sums(p, 2 * l, s.c, s.hidden) + s.h0;
  gemv_part<T>(p, ring, nullptr, xs, G * hd, false, s.h1 - s.h0, s.rpl_o, true, sc,
               [&](int r, float gate, float) { sums[r] = gate; });
  stamp(p, slot, kDone);
}

template <class T>
__device__ void mlp_step(const DecodeProgram& p, const Share& s, int l, Ring& ring, Scratch& sc, T* xs, T* rs, T* mine,
                         uint32_t* seen, uint32_t& phase) {
  const DecodeOp* ops = p.ops + 5 * l;
  const int slot = 5 * l + 3;
  stamp(p, slot, kStart);
  const unsigned char* first = stage_residual<T>(p, s, 2 * l + 1, ops[3].eps, ring, rs, xs, sc);
  release_producer(p, ring);
  stamp(p, slot, kStaged);
  const T* bias = static_cast<const T*>(ops[3].bias);
  const int row0 = s.i0 + s.a0;
  gemv_part<T>(p, ring, reinterpret_cast<const T*>(first + s.hidden * 2), xs, s.hidden, true, s.a1 - s.a0, s.rpl_gu,
               false, sc, [&](int r, float gate, float up) {
                 mine[r] = from_f<T>(gemv_value<T, kNormSwiglu>(gate, up, bias, row0 + r, s.inter, 0.0f));
               });
  stamp(p, slot, kProducts);
  gather(xs, mine, s.inter_c, s.j, s.C, seen, phase);
  stamp(p, slot, kGathered);
  float* sums = step_sums(p, 2 * l + 1, s.c, s.hidden) + s.h0;
  gemv_part<T>(p, ring, nullptr, xs, s.inter_c, false, s.h1 - s.h0, s.rpl_down, true, sc,
               [&](int r, float gate, float) { sums[r] = gate; });
  stamp(p, slot, kDone);
}

// --- the kernel ---

template <class T>
__global__ void __launch_bounds__(kBlockThreads, 1)
    cluster_kernel(const __grid_constant__ DecodeProgram params, uint32_t xs_bytes, uint32_t rs_bytes,
                   uint32_t ring_bytes) {
  // Built for every target, run on sm_90 and newer only (decode_cluster_size).
  __shared__ __align__(16) DecodeProgram p;
  {
    const uint4* src = reinterpret_cast<const uint4*>(&params);
    uint4* dst = reinterpret_cast<uint4*>(&p);
    for (int i = threadIdx.x; i < static_cast<int>(sizeof(DecodeProgram) / 16); i += kBlockThreads) dst[i] = src[i];
  }
  extern __shared__ uint4 smem[];
  __shared__ Scratch sc;
  __shared__ Share share;
  __shared__ RingShared ring_sh;
  __shared__ __align__(16) T mine[kMaxMine];
  __shared__ __align__(16) T hv[(kMaxGroup + 2) * kMaxHd];  // the kv head's q, k and v rows
  __shared__ __align__(16) T fresh[2 * kMaxHd];
  __shared__ ChunkState st;
  __shared__ uint32_t seen[kMaxCluster];
  // Dynamic shared memory: the staged input, the residual, then the ring.
  T* xs = reinterpret_cast<T*>(smem);
  T* rs = reinterpret_cast<T*>(reinterpret_cast<unsigned char*>(smem) + xs_bytes);
  __syncthreads();
  if (threadIdx.x == 0) {
    share = make_share(p);
    init_ring(ring_sh);
  }
  if (threadIdx.x < kMaxCluster) seen[threadIdx.x] = 0;
  for (int i = threadIdx.x; i < p.head_dim / 2; i += kBlockThreads)
    sincosf(static_cast<float>(p.positions[0]) * p.inv_freq[i], &sc.rot_sn[0][i], &sc.rot_cs[0][i]);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // Every block of the cluster has zeroed its slots before any is written.
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
  const Share& s = share;
  unsigned char* ring_base = reinterpret_cast<unsigned char*>(smem) + xs_bytes + rs_bytes;
  if (threadIdx.x >= kThreads) {
    Feeder f{ring_sh, ring_base, ring_bytes, p.inflight_bytes, 0, 0, 0, 0};
    produce_layers<T>(p, s, f);
    return;
  }
  Ring ring{ring_base, ring_bytes, 0, &ring_sh, &s.item, nullptr, nullptr, 0, nullptr};
  uint32_t passes = 0, phase = 0;
  const int layers = p.num_ops / 5;
  for (int l = 0; l < layers; ++l) {
    if (l > 0) grid_barrier(p.barrier, passes, trace_slot(p, 5 * l), true);
    attention_step<T>(p, s, l, ring, sc, xs, rs, mine, hv, fresh, st, seen, phase);
    grid_barrier(p.barrier, passes, trace_slot(p, 5 * l + 3), true);
    mlp_step<T>(p, s, l, ring, sc, xs, rs, mine, seen, phase);
  }
  // The residual after the last step, back where the program found it.
  // Past this barrier no block reads or writes another's shared memory
  // (the last were the MLP step's gather and cluster_sync), so blocks may
  // exit in any order.
  grid_barrier(p.barrier, passes, nullptr, true);
  store_slice<T>(p, s, 2 * layers, static_cast<T*>(p.ops[5 * (layers - 1) + 4].out));
  leave_grid(p.barrier);
}

template <class T>
int dynamic_smem() {
  static const int bytes = [] {
    auto kernel = cluster_kernel<T>;
    int dev = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    cudaFuncAttributes attr{};
    cudaFuncGetAttributes(&attr, kernel);
    const int n = (optin - static_cast<int>(attr.sharedSizeBytes) - 1024) / 16 * 16;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, n);
    cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    return n;
  }();
  return bytes;
}

template <class T>
cudaLaunchConfig_t config(int clusters, int c, cudaLaunchAttribute* attr) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(clusters * c);
  cfg.blockDim = dim3(kBlockThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(dynamic_smem<T>());
  set_cluster_blocks(cfg, attr, c);
  return cfg;
}

// The smallest and largest share of the intermediate among p's clusters.
void inter_shares(const DecodeProgram& p, int& least, int& most) {
  least = p.ops[3].m;
  most = 0;
  for (int c = 0; c < p.clusters; ++c) {
    int i0 = 0, n = 0;
    inter_share(p, c, i0, n);
    least = std::min(least, n);
    most = std::max(most, n);
  }
}

// The widest input a GEMV part stages (xs): hidden, the group's heads, or
// a cluster's share of the intermediate.
int widest_input(const DecodeProgram& p) {
  int least = 0, most = 0;
  inter_shares(p, least, most);
  return std::max({p.ops[0].k, p.heads / p.kv_heads * p.head_dim, most});
}

// Clusters of 16 blocks where kv_heads of them fit the device at once, else
// of 8; as many clusters as fit (at most max_clusters), the first kv_heads
// of them owning a kv head each.
template <class T>
ClusterShape cluster_shape(int kv_heads, int sm_count, int max_clusters) {
  for (int c : {16, 8}) {
    if (kv_heads * c > sm_count) continue;
    cudaLaunchAttribute attr[1];
    const cudaLaunchConfig_t cfg = config<T>(kv_heads, c, attr);
    int active = 0;
    if (cudaOccupancyMaxActiveClusters(&active, cluster_kernel<T>, &cfg) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    if (active >= kv_heads) return ClusterShape{c, std::max(kv_heads, std::min({active, sm_count / c, max_clusters}))};
  }
  return ClusterShape{};
}

// The largest load a block queues (each must fit the ring whole): a part's
// first load with its norm weights and a full load of rows, or a full
// sub-chunk of K and V rows.
int64_t largest_load(const DecodeProgram& p) {
  const int64_t H = p.ops[0].k, hd = p.head_dim, o_k = p.heads / p.kv_heads * hd;
  const int64_t qkv = 2 * H + int64_t{rows_per_load(p, static_cast<int>(H * 2))} * padded(static_cast<int>(H)) * 2;
  const int64_t gu = 2 * H + 2 * int64_t{rows_per_load(p, static_cast<int>(H * 4))} * padded(static_cast<int>(H)) * 2;
  const int64_t o = int64_t{rows_per_load(p, static_cast<int>(o_k * 2))} * padded(static_cast<int>(o_k)) * 2;
  // A down load's size is not monotone in the cluster's share (the row cap,
  // padding), so every share is looked at.
  int64_t down = 0;
  for (int c = 0; c < p.clusters; ++c) {
    int i0 = 0, n = 0;
    inter_share(p, c, i0, n);
    down = std::max(down, int64_t{rows_per_load(p, n * 2)} * padded(n) * 2);
  }
  const int64_t attention = 4 * hd + 2 * int64_t{kSubChunk} * hd * 2;
  return std::max({qkv, gu, o, down, attention});
}

template <class T>
bool launch(const DecodeProgram& p, cudaStream_t s) {
  cudaLaunchAttribute attr[1];
  cudaLaunchConfig_t cfg = config<T>(p.clusters, p.cluster, attr);
  cfg.stream = s;
  const int64_t xs_bytes = (padded(widest_input(p)) * 2 + 15) / 16 * 16;
  const int64_t rs_bytes = (int64_t{p.ops[0].k} * 2 + 15) / 16 * 16;
  const int64_t ring_bytes = (static_cast<int64_t>(cfg.dynamicSmemBytes) - xs_bytes - rs_bytes) / 16 * 16;
  if (ring_bytes < largest_load(p)) return false;  // a GPU with less shared memory than an H100
  // Not a cooperative launch (it does not combine with clusters): every
  // block waits for the others at the grid barriers, so all must be
  // resident at once. decode_cluster_shape only offers clusters that fit
  // the device together, and the kernels before this one in
  // the stream have finished when it starts; work from another process (or
  // stream) holding SMs delays the launch until it is done. Should blocks
  // still wait for others that never come, the barriers trap after 10 s
  // (SpinWatch): the launch fails instead of hanging.
  check_cuda(cudaLaunchKernelEx(&cfg, cluster_kernel<T>, p, static_cast<uint32_t>(xs_bytes),
                                static_cast<uint32_t>(rs_bytes), static_cast<uint32_t>(ring_bytes)),
             "decode cluster kernel launch");
  return true;
}

}  // namespace

ClusterShape decode_cluster_shape(Ty t, int kv_heads, int sm_count, int max_clusters) {
  int dev = 0, major = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (major < 9 || t == Ty::F32 || kv_heads < 1) return ClusterShape{};
  return t == Ty::F16 ? cluster_shape<__half>(kv_heads, sm_count, max_clusters)
                      : cluster_shape<__nv_bfloat16>(kv_heads, sm_count, max_clusters);
}

bool decode_cluster_fits(const DecodeProgram& p) {
  const int c = p.cluster;
  if (c < 1 || c > kMaxCluster || p.clusters < p.kv_heads || p.rows != 1 || p.heads < 1 || p.kv_heads < 1 ||
      p.num_ops < 5 || p.num_ops % 5)
    return false;
  const int group = p.heads / p.kv_heads, hd = p.head_dim;
  const int H = p.ops[0].k, I = p.ops[3].m;
  const void* res = p.ops[0].x;
  for (int l = 0; l < p.num_ops / 5; ++l) {
    const DecodeOp* o = p.ops + 5 * l;
    const bool kinds = o[0].kind == kOpGemvNorm && o[1].kind == kOpAttention && o[2].kind == kOpGemvAdd &&
                       o[3].kind == kOpGemvNormSwiglu && o[4].kind == kOpGemvAdd;
    if (!kinds) return false;
    // One residual stream through the layer, and each op's input the op before's output.
    const bool chain = o[0].x == res && o[1].x == o[0].out && o[2].x == o[1].out && o[2].out == res && o[3].x == res &&
                       o[4].x == o[3].out && o[4].out == res;
    const bool shape = o[0].k == H && o[0].m == (p.heads + 2 * p.kv_heads) * hd && o[2].k == p.heads * hd &&
                       o[2].m == H && o[3].k == H && o[3].m == I && o[4].k == I && o[4].m == H;
    if (!chain || !shape) return false;
  }
  // The tensor-core GEMV takes k in chunks of 32: the o part's k is the
  // group's heads, the down part's the cluster's share of the intermediate.
  if (I % 32 != 0 || (group * hd) % 32 != 0 || H % 32 != 0) return false;
  int least = 0, most = 0;
  inter_shares(p, least, most);
  // Every block has rows of every part; its q/k/v and gate/up rows fit its slots.
  const int qkv_rows = (group + 2) * hd;
  if (qkv_rows < c || least < std::max(c, 32) || H < c) return false;
  if ((qkv_rows + c - 1) / c > kMaxMine || (most + c - 1) / c > kMaxMine) return false;
  if (padded(widest_input(p)) * 2 > kXsBudget) return false;
  return group <= kMaxGroup && hd <= kMaxHd && (hd / 2) <= 32 * kRopePairs;
}

bool run_decode_cluster(Ty t, const DecodeProgram& p, cudaStream_t s) {
  return t == Ty::F16 ? launch<__half>(p, s) : launch<__nv_bfloat16>(p, s);
}

}  // namespace nativelm::cuda
