#pragma once
// A decode step's transformer layers as one list of ops, run by a single
// persistent kernel (decode_kernel.cu). Plain data shared by the host, which
// builds the list op by op as the model calls the backend, and the kernel,
// which receives it as its parameter.
//
// Why one kernel: at batch 1 each op reads a few MB of weights, and a kernel
// boundary costs a few microseconds that no prefetch can hide (the next
// kernel's wait returns only when the whole previous grid is done). Inside
// one kernel every block streams its share of the weights of the ops ahead
// through a shared-memory ring, so the weights keep arriving while the
// blocks wait at the grid barrier between two ops.
#include <cuda.h>

#include <cstdint>

#include "backend/cuda/kernels.h"

namespace nativelm::cuda {

enum DecodeOpKind : int32_t {
  kOpGemvNorm = 1,        // out = rms_norm(x, nw) @ w^T (+ bias)
  kOpGemvNormSwiglu = 2,  // out = silu(gate) * up of rms_norm(x, nw) @ w^T, w stacked [2m, k]
  kOpGemvAdd = 3,         // out (the residual) += x @ w^T (+ bias)
  kOpAttention = 4,       // out = attention of the decode rows (qkv_prepare done inside)
  kOpGemvNormHead = 5,    // out (f32, no flagged words) = rms_norm(x, nw) @ w^T: the LM head
};

// Where a flagged program's op (DecodeProgram::flags) reads and writes:
// the op whose output x is (-1: x is read as it was before the launch),
// for kOpGemvAdd the op whose output `out` holds before this one (-1:
// likewise), where this op's flagged output starts in `flags` (words),
// and kWritePlain / kBarrierBefore.
struct FlagLinks {
  int32_t src, old_src;
  uint32_t region;
  int32_t bits;
};

struct DecodeOp {
  int32_t kind;
  int32_t m, k;  // GEMV: output columns per row (for swiglu: of the result), input columns
  float eps;
  const void* x;     // GEMV input [rows, k] / attention: the fused qkv [rows, width]
  const void* nw;    // norm weight [k] / attention: q_norm (or null)
  const void* w;     // weight [m, k] / attention: k_norm (or null)
  const void* bias;  // [m] (swiglu: [2m]) or null
  void* out;         // [rows, m] / attention: [rows, heads * head_dim]
  void* k_pool;      // attention only: [slots, kv_heads * head_dim]
  void* v_pool;
  FlagLinks link;  // flagged programs only (plan_flagged sets it)
};

// DecodeOp::bits: the op also writes `out` itself (it is the last op of
// the program that writes there; later work reads it), and a grid barrier
// comes before it (an earlier op read `out` as it was before the launch).
constexpr int32_t kWritePlain = 1, kBarrierBefore = 2;

constexpr int kMaxDecodeOps = 160;   // 32 layers of five ops; a longer list is run in parts
constexpr int kMaxDecodeRows = 8;    // batch rows one program serves

// The input rows a program's kernel is compiled for (1, 2, 4 or 8).
inline int decode_rows_bucket(int rows) { return rows <= 1 ? 1 : rows <= 2 ? 2 : rows <= 4 ? 4 : 8; }
constexpr int kDecodeGroupBytes = 64 << 10;  // weight bytes one block streams per step of an op
// A decode kernel block's compute threads (8 warps, plus the producer
// warp). With 16 (17 warps a block, 5 on one SM quarter) ptxas had 96
// registers a thread and spilled; with 8 it has up to 168 and spills
// nothing, and batch 1 ran ~7% faster (docs/benchmarks.md, 2026-11-23).
constexpr int kDecodeComputeThreads = 256;
// A flagged program's GEMV stages a normalised input with every 16-byte
// piece in a register (at most this many pieces per thread).
constexpr int kFlagPieces = 4;
// Per (op, block): global ns at the op's start (barrier passed), input
// staged, op done; the same three in SM clock cycles; cycles spent waiting
// for the op's loads; global ns when its first load was issued; global ns
// when the block arrived at the barrier before the op, and when it saw
// the others arrive; then SM clocks at finer points inside the op
// (decode_kernel.cu, fine_stamp: 10-15 in the first load's products and
// stores, 16-20 in the input staging).
constexpr int kTraceStamps = 21;
// The grid barrier's arrivals are spread over kBarrierLines counters, each
// in its own 128-byte line (132 blocks adding to one word queue behind
// each other); the exit counter follows them.
constexpr int kBarrierLines = 16;
// The word after the exit counter counts the launches that have left (the
// last block out adds one): a flagged program's epoch is that count + 1.
constexpr int kBarrierWords = (kBarrierLines + 1) * 32;
constexpr int kEpochWord = kBarrierLines * 32 + 1;

// Everything but the ops is shared by all attention ops of a step.
struct alignas(16) DecodeProgram {
  int32_t num_ops, rows;
  int32_t heads, kv_heads, head_dim, splits;  // attention splits: chunks per (row, kv head)
  int32_t page_size;
  float scale;
  int32_t max_k;           // widest GEMV input (sizes the input staging)
  uint32_t inflight_bytes;  // ring bytes a block may have on their way at once
  int32_t hold;             // the producer pauses between an op's last load and the next op's staging
  int32_t min_chunk;        // attention positions per (row, kv head) chunk at least
  int32_t one_chunk;        // one-row programs: up to this many positions are one chunk (no merge)
  const int32_t* positions;  // [rows]
  const int32_t* slots;      // [rows]
  const int32_t* row_seq;    // [rows]
  const SeqInfo* seqs;
  const int32_t* pages;
  const float* inv_freq;     // [head_dim / 2]
  float* partial;            // rows * heads * splits * (head_dim + 2)
  int32_t* counters;         // rows * kv_heads, zero between ops
  uint32_t* barrier;         // kBarrierWords zeroed words: arrival counters, then the exit counter
  // Null, or [num_ops][blocks][kTraceStamps] timestamps of each block's
  // phases (NATIVELM_DECODE_TRACE, for finding where a step's time goes).
  unsigned long long* trace;
  // The cluster kernel only (decode_cluster.cu): blocks per cluster,
  // clusters, the o and down projections' sums per cluster
  // [2][clusters][hidden] (f32), and the residual after each of its steps
  // [2][hidden]. Its bytes per load, and whether clusters without a kv
  // head take more of the MLP (attention_pieces).
  int32_t cluster, clusters, load_bytes, balance;
  float* sums;
  void* resid;
  // Null, or a flagged program: instead of a grid barrier and a read of
  // the activations from L2 between two ops, each op's output goes to its
  // own region here as 8-byte words, two 16-bit values and the launch's
  // epoch, stored and loaded whole; a reader polls until every word it
  // needs carries the epoch (a word is current or not, never half), and
  // needs no barrier. Only the last op writing a buffer writes it as well.
  unsigned long long* flags;
  // Flagged: split attention merged by chunk 0's block from flagged states
  // (1), or by the last chunk to finish, counted with an atomic (0).
  int32_t flag_merge;
  uint32_t poll_ns;  // flagged: pause after a poll that found stale words
  // Cached K/V rows come as boxes of kKvBoxRows positions through the
  // tensor maps of KvMaps (chunks start at multiples of kKvBoxRows), not
  // a bulk copy per position (0: the pages are not whole boxes).
  int32_t kv_box;
  DecodeOp ops[kMaxDecodeOps];
};

// Positions per box of a KV pool's tensor map: a box is one kv head's rows
// of kKvBoxRows consecutive slots, within one page (page_size a multiple).
constexpr int kKvBoxRows = 8;
// The tensor maps of the K and V pools of a program's attention ops, in op
// order (DecodeOp::m of an attention op is its index here). A kernel
// parameter of its own: the program is copied to shared memory, these are
// read where they are.
constexpr int kMaxKvMaps = kMaxDecodeOps / 5;
struct KvMaps {
  CUtensorMap k[kMaxKvMaps], v[kMaxKvMaps];
};
// A tensor map of boxes of kKvBoxRows x head_dim over a pool of `slots`
// rows of kv_dim 16-bit values; false where the driver cannot make one.
bool make_kv_map(CUtensorMap& map, const void* pool, int64_t slots, int kv_dim, int head_dim);

// Makes p a flagged program for a launch on `blocks` blocks with values of
// elem_bytes: sets each op's src, old_src, region and bits, and returns
// the words of `flags` it needs; or returns 0 and leaves the ops alone
// where it cannot (an input that overlaps an earlier output without being
// exactly that output, an odd width, a shape the flagged staging does not
// serve). decode_flags.cpp.
size_t plan_flagged(DecodeProgram& p, int blocks, int elem_bytes);
// Words one op's flagged output takes (rows * its output width / 2; for
// attention then its split chunks' states, f32 words).
size_t flagged_words(const DecodeProgram& p, const DecodeOp& op);

// Whether a GEMV op of this shape can join a program (16-bit, aligned,
// one weight row within a streaming step).
bool decode_gemv_fits(Ty t, int rows, int m, int k, bool dual, const void* x, const void* w, const void* nw);
// Whether an attention op of this head layout can join (16-bit, head size
// a multiple of 8 up to 128, at most 8 query heads per kv head).
bool decode_attention_fits(Ty t, int rows, int heads, int kv_heads, int head_dim);
// Chunks per (row, kv head) for the attention ops on `blocks` blocks.
int decode_attention_splits(int rows, int kv_heads, int blocks);
// Launches the program on `blocks` (one per multiprocessor) blocks that all
// run at once; throws nativelm::Error if the launch fails.
void run_decode_program(Ty t, const DecodeProgram& p, const KvMaps& maps, int blocks, cudaStream_t s);

// The cluster kernel (decode_cluster.cu) runs a one-row program of whole
// layers with a cluster of blocks per kv head, and more clusters where
// they fit, which share the MLP. Its shape on this device: blocks per
// cluster (16 or 8) and clusters (kv_heads up to max_clusters), or zeros
// where it cannot run.
struct ClusterShape {
  int size = 0, count = 0;
};
ClusterShape decode_cluster_shape(Ty t, int kv_heads, int sm_count, int max_clusters);
// Whether program p (its layout fields, cluster and clusters set) is whole
// layers of the shape the cluster kernel serves (norm + qkv, attention,
// o + add, norm + gate/up, down + add, one residual stream).
bool decode_cluster_fits(const DecodeProgram& p);
// Launches p (p.cluster, p.clusters, p.sums and p.resid set); false, and nothing
// launched, when its loads do not fit the device's shared memory; throws
// nativelm::Error if the launch fails. Its GEMV and attention outputs
// (qkv, attention, activation) are not written: they stay in the blocks.
bool run_decode_cluster(Ty t, const DecodeProgram& p, cudaStream_t s);

}  // namespace nativelm::cuda
