#pragma once
// Host-callable launchers for the CUDA kernels. Plain C++ on this side (the
// backend is compiled by the host compiler); each launcher queues work on the
// given stream and returns. Element types: one Ty for activations, weights and
// the KV cache of a model (f32, f16 or bf16), all math in f32.
#include <cstdint>

#include <cuda_runtime_api.h>
#include <vector_types.h>

namespace nativelm::cuda {

enum class Ty : uint8_t { F32, F16, BF16 };  // the values of nativelm::DType

// Lets the decode kernels overlap their launch with the previous kernel's
// tail (programmatic dependent launch; sm_90 and newer).
void enable_overlapped_launch(bool on);

// tokens[i] = picks[from[i]] where from[i] >= 0 (tokens fed from a pick).
void feed_tokens(int32_t* tokens, const int32_t* from, const int32_t* picks, int n, cudaStream_t s);

// out[i, :] = table[ids[i], :] (also gather_rows: x rows picked by index).
void gather(Ty t, const void* table, const int32_t* ids, int n, int d, void* out, cudaStream_t s);
// out = rms_norm(x) * w, rounded as transformers does (normalised x in Ty first).
void rms_norm(Ty t, const void* x, const void* w, float eps, int n, int d, void* out, cudaStream_t s);
// residual += x (rounded to Ty), then out = rms_norm(residual) * w.
void add_rms_norm(Ty t, void* residual, const void* x, const void* w, float eps, int n, int d,
                  void* out, cudaStream_t s);
// Widest row the norms take (hidden sizes up to 8192).
int max_norm_width();
// out[n, d] = silu(gu[:, :d]) * gu[:, d:].
void silu_mul(Ty t, const void* gu, int n, int d, void* out, cudaStream_t s);
// out[n, m] += bias[m].
void add_bias(Ty t, const void* bias, int n, int m, void* out, Ty out_t, cudaStream_t s);

struct QkvArgs {
  const void* qkv;     // [n, (heads + 2 kv_heads) * head_dim]
  const void* q_norm;  // [head_dim] or null (then k_norm is null too)
  const void* k_norm;
  float eps;
  const int32_t* positions;  // [n]
  const float* inv_freq;     // [head_dim / 2]
  const int32_t* slots;      // [n]
  void* k_pool;              // [slots, kv_heads * head_dim]
  void* v_pool;
  void* q_out;  // [n, heads * head_dim]
  int n, heads, kv_heads, head_dim;
};
// Head RMSNorm (optional) + RoPE on q and k, K/V written to the pools.
void qkv_prepare(Ty t, const QkvArgs& a, cudaStream_t s);

// Per-sequence metadata: q_begin, q_len, kv_len, first entry in `pages`.
struct SeqInfo {
  int32_t q_begin, q_len, kv_len, page_off;
};

struct AttentionArgs {
  const void* q;  // [rows, heads * head_dim]
  const void* k_pool;
  const void* v_pool;
  void* out;                // [rows, heads * head_dim]
  const int32_t* row_seq;   // [rows]: the sequence of each query row
  const SeqInfo* seqs;
  const int32_t* pages;
  float* partial;           // rows * heads * splits * (head_dim + 2) floats when splits > 1
  int* counters;            // rows * heads zeroed ints when splits > 1 (left zeroed)
  int rows, heads, kv_heads, head_dim, page_size, splits;
  float scale;
  // Prefill tiles: (sequence, first query row) of kPrefillTile rows each,
  // for every sequence with at least kPrefillMinRows query rows; those rows
  // go to the tensor-core kernel when it applies (prefill_tiles_apply).
  const int32_t* tiles;
  int num_tiles;
  // Set (q unused): every row is a sequence's one new token, and the decode
  // kernel does qkv_prepare's work itself (see attention_fuses_prepare).
  QkvArgs prep{};
};
constexpr int kPrefillTile = 64;
constexpr int kPrefillMinRows = 16;
// Whether the tensor-core prefill kernel serves this dtype and head size.
bool prefill_tiles_apply(Ty t, int head_dim);
// Causal paged attention, each row split over `splits` KV chunks (flash
// decoding) and combined; grid sizes depend only on rows and splits, so the
// launch can be recorded once per batch size.
void attention(Ty t, const AttentionArgs& a, cudaStream_t s);
// Whether the decode kernel for this shape serves AttentionArgs::prep (and
// does not fall back to the general kernel).
bool attention_fuses_prepare(Ty t, int heads, int kv_heads, int head_dim);
// Number of query heads one attention block serves (a divisor of the GQA group).
int attention_heads_per_block(int heads, int kv_heads);

// out[n, m] = x[n, k] @ w[m, k]^T (+ bias) for n <= kGemvMaxRows, reading w once.
constexpr int kGemvMaxRows = 8;
void gemv(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* out,
          Ty out_t, cudaStream_t s);

// The GEMV with rms_norm(x, norm, eps) as its input (as the RMSNorm kernel
// would write it); with swiglu, w is a stacked gate/up weight [2m, k] (bias
// [2m]) and out[n, m] = silu(gate) * up: the MLP's first half in one pass.
void gemv_norm(Ty t, const void* x, const void* norm, float eps, const void* w, const void* bias, int n, int m,
               int k, void* out, bool swiglu, cudaStream_t s);
// residual[n, m] += x[n, k] @ w[m, k]^T (+ bias), the projection rounded to
// Ty before the add (as transformers adds two Ty tensors).
void gemv_add(Ty t, const void* x, const void* w, const void* bias, int n, int m, int k, void* residual,
              cudaStream_t s);
// residual += x, n elements.
void add(Ty t, void* residual, const void* x, int64_t n, cudaStream_t s);

// One row's sampling parameters (those of nativelm::TokenPick).
struct SampleRow {
  float temperature;
  int32_t top_k;
  float top_p, min_p, uniform;
  int32_t logprobs;  // -1: none; n >= 0: log Z, the pick's and the top n (at most kMaxLogprobs)
  // fed >= 0: the previous pick's token of row `fed` joins this row's
  // output; its edit (found, or edits[extra]) takes these penalties.
  int32_t fed, extra;
  float repetition, frequency, presence;
};
constexpr int kMaxLogprobs = 20;
// Per row: log Z, the picked token's log-probability, then (token bits,
// log-probability) of the top ones, most likely first.
constexpr int kLogprobStride = 2 + 2 * kMaxLogprobs;
// One nativelm::LogitEdit of row `row`.
struct EditRow {
  int32_t row, token;
  float bias, repetition, subtract;
  int32_t mask, count;
};
// Adds each fed row's pending token (picks[r].fed: its row in prev_ids) to
// its edits: the edit of (row, token) among the first `sorted` edits
// (sorted by (row, token)), else edits[picks[r].extra], takes the row's
// penalties for one more occurrence. Before edit_logits.
void feed_edits(const SampleRow* picks, int rows, const int32_t* prev_ids, EditRow* edits, int sorted, cudaStream_t s);
// Applies n edits to logits [rows, vocab] in place (at most one per (row,
// token); tokens outside [0, vocab) are skipped), as apply_logit_edits;
// raw[i] gets edit i's logit before it.
void edit_logits(float* logits, int vocab, const EditRow* edits, int n, float* raw, cudaStream_t s);
// Rows whose pick asks for log-probabilities (picks[r].logprobs >= 0): log Z
// and the top ones into lp [rows, kLogprobStride], from the raw logits
// (before edit_logits); scratch as sample()'s.
void logprob_stats(const float* logits, int rows, int vocab, const SampleRow* picks, float* lp, void* scratch,
                   cudaStream_t s);
// After the pick (ids): those rows' picked token's log-probability, its
// logit taken from before the edits (the n_edits edits sorted by (row,
// token), with edit_logits' raw).
void logprob_chosen(const float* logits, int rows, int vocab, const SampleRow* picks, const int32_t* ids,
                    const EditRow* edits, const float* raw, int sorted, float* lp, cudaStream_t s);
// out[i] = the token picks[i] draws from logits[i, :] (see TokenPick), with
// `scratch` of sample_scratch_bytes(vocab) bytes (any number of rows).
size_t sample_scratch_bytes(int vocab);
void sample(const float* logits, int rows, int vocab, const SampleRow* picks, int32_t* out, void* scratch,
            cudaStream_t s);

// out[i] = first index of the maximum of logits[i, :]. scratch holds
// rows * kArgmaxSlices (value, index) pairs.
constexpr int kArgmaxSlices = 128;
void argmax(const float* logits, int rows, int vocab, int32_t* out, float2* scratch, cudaStream_t s);

}  // namespace nativelm::cuda
