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
#include <cstdint>

#include "backend/cuda/kernels.h"

namespace nativelm::cuda {

enum DecodeOpKind : int32_t {
  kOpGemvNorm = 1,        // out = rms_norm(x, nw) @ w^T (+ bias)
  kOpGemvNormSwiglu = 2,  // out = silu(gate) * up of rms_norm(x, nw) @ w^T, w stacked [2m, k]
  kOpGemvAdd = 3,         // out (the residual) += x @ w^T (+ bias)
  kOpAttention = 4,       // out = attention of the decode rows (qkv_prepare done inside)
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
};

constexpr int kMaxDecodeOps = 160;   // 32 layers of five ops; a longer list is run in parts
constexpr int kMaxDecodeRows = 8;    // batch rows one program serves
constexpr int kDecodeGroupBytes = 64 << 10;  // weight bytes one block streams per step of an op

// Everything but the ops is shared by all attention ops of a step.
struct alignas(16) DecodeProgram {
  int32_t num_ops, rows;
  int32_t heads, kv_heads, head_dim, splits;  // attention splits: chunks per (row, kv head)
  int32_t page_size;
  float scale;
  int32_t max_k;           // widest GEMV input (sizes the input staging)
  const int32_t* positions;  // [rows]
  const int32_t* slots;      // [rows]
  const int32_t* row_seq;    // [rows]
  const SeqInfo* seqs;
  const int32_t* pages;
  const float* inv_freq;     // [head_dim / 2]
  float* partial;            // rows * heads * splits * (head_dim + 2)
  int32_t* counters;         // rows * kv_heads, zero between ops
  uint32_t* barrier;         // two zeroed words: arrivals, exits
  DecodeOp ops[kMaxDecodeOps];
};

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
void run_decode_program(Ty t, const DecodeProgram& p, int blocks, cudaStream_t s);

}  // namespace nativelm::cuda
