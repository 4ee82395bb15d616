#pragma once
// The Backend interface: every op a model needs, implemented once per device.
// Models are written against this interface only; they never know which
// device they run on. Shapes are given in the comments as [rows, cols];
// activations use activation_dtype(), weights keep their checkpoint dtype.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "backend/tensor.h"

namespace nativelm {

// Where each query token of a batch looks in the paged KV cache.
// Sequence s owns query rows [q_begin, q_begin + q_len) of the batch; after
// this step's K/V are written it has kv_len cached positions, so its query i
// sits at position kv_len - q_len + i and attends to positions [0, that].
// Position p of the sequence lives in slot pages[p / page_size] * page_size +
// p % page_size of the layer's K and V pools.
struct AttentionSeq {
  int32_t q_begin = 0;
  int32_t q_len = 0;
  int32_t kv_len = 0;
  const int32_t* pages = nullptr;  // host memory, at least ceil(kv_len / page_size) entries
};

struct AttentionBatch {
  std::vector<AttentionSeq> seqs;
  int32_t page_size = 0;
  // Flat KV slot for every query row (where its K/V are written); host memory.
  std::vector<int32_t> slots;
};

// The host inputs of one forward step. Several ops see the same arrays (every
// layer's qkv_prepare reads the positions); a backend with its own memory
// copies them over once in begin_step, and an op handed one of these very
// spans uses that copy.
struct StepInputs {
  std::span<const int32_t> tokens{};
  std::span<const int32_t> positions{};
  std::span<const int32_t> logit_rows{};
  const AttentionBatch* attention = nullptr;
  // Per token row: -1, or the row of the newest started pick
  // (Backend::start_pick) whose token this row takes instead of tokens[i].
  // Only on a backend that feeds_picks(); empty: none.
  std::span<const int32_t> from_pick{};
};

// Column layout of a fused q/k/v projection: [q heads | k heads | v heads].
struct QkvLayout {
  int64_t heads = 0, kv_heads = 0, head_dim = 0;
  int64_t width() const { return (heads + 2 * kv_heads) * head_dim; }
};

// A change to one logit before a pick, in the host sampler's order: + bias;
// -inf if masked (a stop token before min_new_tokens); HF's repetition
// penalty (a positive logit divided by `repetition`, any other multiplied;
// 1: none); - subtract (OpenAI's frequency and presence penalties:
// fma(frequency, count, presence) for a token seen `count` times).
struct LogitEdit {
  int32_t token = 0;
  float bias = 0.0f;
  float repetition = 1.0f;
  float subtract = 0.0f;
  bool mask = false;
  int32_t count = 0;  // the token's occurrences in the output so far
};
// Applies edits (at most one per token) to one row of logits on the host:
// the reference for every backend. Tokens outside the row are ignored.
void apply_logit_edits(std::span<float> logits, std::span<const LogitEdit> edits);

// How to pick one row's next token from its logits: softmax(logits /
// temperature) cut to the top_k most likely (0: all), then to the smallest
// most-likely set holding top_p of that mass, then to tokens of at least
// min_p times the most likely one; the draw is the token where `uniform`
// (in [0, 1)) falls in the cumulative mass taken in vocabulary order.
// temperature <= 1e-5 or top_k == 1: the argmax.
struct TokenPick {
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float uniform = 0.0f;
  // Applied to the row first (sample() may do so in place); sorted by
  // token, at most one per token.
  std::vector<LogitEdit> edits;
  // >= 0: also the picked token's log-probability and those of the
  // `logprobs` most likely tokens, from the row before any edit (the
  // model's own distribution, as vLLM reports by default).
  int32_t logprobs = -1;
  // >= 0 (backends that feed picks): the token picked for row `fed` of the
  // pick before joins this row's output before the edits apply (the host
  // has not seen it yet), and its edit takes these penalties.
  int32_t fed = -1;
  float repetition_penalty = 1.0f, frequency_penalty = 0.0f, presence_penalty = 0.0f;
};
// The most TokenPick::logprobs a backend must report (the OpenAI API's limit).
constexpr int32_t kMaxPickLogprobs = 20;
// What a pick with TokenPick::logprobs >= 0 reports.
struct PickLogprobs {
  float chosen = 0.0f;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};
// Those log-probabilities from a row of raw logits on the host: the
// reference for every backend.
PickLogprobs token_logprobs(std::span<const float> raw, int32_t token, int32_t top);
// That pick from one row of logits on the host: the reference every
// backend's sample() follows, and the host sampler's last step, so a seed
// picks the same tokens wherever the pick runs.
int32_t pick_token(std::span<const float> logits, const TokenPick& pick);

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  // The model's own dtype, told before any weight is uploaded: a backend may
  // keep weights and activations in it (the CPU computes in f32 regardless).
  virtual void set_model_dtype(DType) {}
  virtual DType activation_dtype() const = 0;

  // --- memory ---
  // Makes a host tensor (for example, inside a memory-mapped checkpoint)
  // usable as a weight. The host memory must outlive the returned tensor;
  // the CPU backend returns it unchanged (zero-copy), others copy it.
  virtual Tensor upload_weight(const Tensor& host) = 0;
  // One weight made of host parts stacked along rows (q/k/v, gate/up): all
  // parts share their dtype and trailing dimension. Copies on every backend.
  virtual Tensor upload_stacked(std::span<const Tensor> parts);
  // Zero-initialised device memory owned by the backend until free().
  virtual Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) = 0;
  virtual void free(Tensor& t) = 0;
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;
  virtual void copy_from_host(const void* src, Tensor& dst) = 0;
  // Waits until all queued work has finished (no-op on synchronous backends).
  virtual void synchronize() {}
  // Bytes the backend could still allocate (host: MemAvailable); sizes the KV pool.
  virtual int64_t available_memory() const;

  // --- steps ---
  // Brackets the ops of one forward step (see StepInputs).
  virtual void begin_step(const StepInputs&) {}
  virtual void end_step() {}
  // Decode steps of `seqs` sequences may be replayed from a recording (a
  // CUDA graph) when padded to the returned size; 0: run them as they are.
  virtual int32_t graph_batch_size(int32_t seqs) const { (void)seqs; return 0; }
  // Runs body(), or, for a key > 0, a recording of what body() queued the
  // first time this key was seen. Everything body() touches must stay at
  // the same address and shape between calls with one key.
  virtual void run_recorded(int32_t key, const std::function<void()>& body) {
    (void)key;
    body();
  }
  // Forgets every recording (a buffer they use has moved).
  virtual void drop_recordings() {}

  // --- ops ---
  // out[n, d] = table[ids[i], :] for n host ids.
  virtual void embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& out) = 0;
  // out[i, :] = x[i, :] * rsqrt(mean(x[i, :]^2) + eps) * weight. out may alias x.
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // residual += x, then out = rms_norm(residual). The fused pre-norm step.
  virtual void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                            Tensor& out) = 0;
  // out[n, m] = x[n, k] @ w[m, k]^T (+ bias[m]). out may be f32 where x is not (logits).
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  // Turns a fused projection qkv[n, layout.width()] into attention inputs:
  // q and k get RMSNorm over each head (Qwen3's q_norm/k_norm, when given)
  // and rotary embedding (half-split pairs (j, j + head_dim/2), angle =
  // float(positions[i]) * inv_freq[j], inv_freq host memory of head_dim/2);
  // k and v are written to the pools at slots[i]; q goes to q_out
  // [n, heads * head_dim]. Pools are [slots, kv_heads * head_dim].
  virtual void qkv_prepare(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                           const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                           std::span<const float> inv_freq, std::span<const int32_t> slots,
                           Tensor& k_pool, Tensor& v_pool, Tensor& q_out) = 0;
  // out[n, heads * head_dim] = causal softmax(q k^T * scale) v per sequence,
  // from the paged pools, with grouped-query sharing (query head h reads kv
  // head h / (heads / kv_heads)).
  virtual void attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                         const AttentionBatch& batch, int64_t head_dim, float scale,
                         Tensor& out) = 0;
  // out[n, d] = silu(gate_up[n, :d]) * gate_up[n, d:].
  virtual void silu_mul(const Tensor& gate_up, Tensor& out) = 0;
  // residual += x. Both [n, d] in the activation dtype.
  virtual void add(Tensor& residual, const Tensor& x) = 0;

  // Fused pairs of the ops above, for the transformer block's seams. Each
  // default runs the pair through the scratch tensor it is given; a backend
  // may do both in one pass and leave the scratch unused. The results may
  // differ from the pair's only by float rounding.
  // out = linear(rms_norm(x, norm, eps), w, bias); normed [n, k] is scratch.
  virtual void norm_linear(const Tensor& x, const Tensor& norm, float eps, const Tensor& w, const Tensor* bias,
                           Tensor& normed, Tensor& out) {
    rms_norm(x, norm, eps, normed);
    linear(normed, w, bias, out);
  }
  // attention(q) after qkv_prepare(qkv, ..., q): the step from the q/k/v
  // projection to the attention output; q [n, heads * head_dim] is scratch.
  virtual void prepare_attention(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                                 const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                                 std::span<const float> inv_freq, const AttentionBatch& batch, float scale,
                                 Tensor& k_pool, Tensor& v_pool, Tensor& q, Tensor& out) {
    qkv_prepare(qkv, layout, q_norm, k_norm, eps, positions, inv_freq, batch.slots, k_pool, v_pool, q);
    attention(q, k_pool, v_pool, batch, layout.head_dim, scale, out);
  }
  // residual += linear(x, w, bias); proj [n, m] is scratch.
  virtual void linear_add(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& residual, Tensor& proj) {
    linear(x, w, bias, proj);
    add(residual, proj);
  }
  // out[n, d] = silu_mul(linear(rms_norm(x, norm, eps), w, bias)) for a
  // stacked gate/up weight w [2d, k]: the MLP's first half. normed and
  // gate_up [n, 2d] are scratch.
  virtual void norm_linear_swiglu(const Tensor& x, const Tensor& norm, float eps, const Tensor& w,
                                  const Tensor* bias, Tensor& normed, Tensor& gate_up, Tensor& out) {
    rms_norm(x, norm, eps, normed);
    linear(normed, w, bias, gate_up);
    silu_mul(gate_up, out);
  }
  // out[i, :] = x[rows[i], :].
  virtual void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) = 0;
  // out[i] = the first index of the largest value of logits[i, :] (f32).
  virtual void argmax(const Tensor& logits, std::span<int32_t> out);
  // out[i] = the token TokenPick rows[i] picks from logits[i, :] (f32). The
  // default copies the logits to the host.
  virtual void sample(const Tensor& logits, std::span<const TokenPick> rows, std::span<int32_t> out);
  // Whether sample() runs where the logits are (then schedulers prefer it to
  // copying logits back for sampled requests).
  virtual bool samples_on_device() const { return false; }
  // Sets aside what picks over `vocab` logits need, before a KV pool sized by
  // available_memory() takes the rest.
  virtual void prepare_sampling(int32_t vocab) { (void)vocab; }

  // --- picks that do not wait (the overlap scheduler) ---
  // Starts picking each row's next token as argmax() (picks empty) or
  // sample() would, and returns without waiting for it; collect_picks()
  // returns the oldest started pick's tokens. At most two are outstanding.
  // The default picks at once and keeps the result until collected.
  // `logprobs` (optional) gets one entry per row: filled where the row's
  // TokenPick asked for them.
  virtual void start_pick(const Tensor& logits, std::span<const TokenPick> picks);
  virtual void collect_picks(std::vector<int32_t>& out, std::vector<PickLogprobs>* logprobs);
  void collect_picks(std::vector<int32_t>& out) { collect_picks(out, nullptr); }
  // Whether a step may take tokens from the newest started pick without the
  // host seeing them (StepInputs::from_pick), so the host can queue step
  // N + 1 before step N's tokens are known.
  virtual bool feeds_picks() const { return false; }

 private:
  struct Started {
    std::vector<int32_t> tokens;
    std::vector<PickLogprobs> logprobs;
  };
  std::deque<Started> started_picks_;  // the default start_pick's results
};

struct BackendOptions {
  bool cuda_graphs = true;      // --disable-cuda-graph turns it off
  int32_t cuda_graph_max_bs = 160;  // largest decode batch replayed from a graph
};

// Creates the backend for a --device name ("cpu", "cuda"); throws Error with
// the reason when that device is unavailable.
std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& options = {});

}  // namespace nativelm
