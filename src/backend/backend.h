#pragma once
// The Backend interface: every op a model needs, implemented once per device.
// Models are written against this interface only; they never know which
// device they run on. Shapes are given in the comments as [rows, cols];
// activations use activation_dtype(), weights keep their checkpoint dtype.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
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

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;
  virtual DType activation_dtype() const = 0;

  // --- memory ---
  // Makes a host tensor (for example, inside a memory-mapped checkpoint)
  // usable as a weight. The host memory must outlive the returned tensor;
  // the CPU backend returns it unchanged (zero-copy), others copy it.
  virtual Tensor upload_weight(const Tensor& host) = 0;
  // Zero-initialised device memory owned by the backend until free().
  virtual Tensor alloc(DType dtype, std::initializer_list<int64_t> shape) = 0;
  virtual void free(Tensor& t) = 0;
  virtual void copy_to_host(const Tensor& src, void* dst) = 0;
  virtual void copy_from_host(const void* src, Tensor& dst) = 0;
  // Waits until all queued work has finished (no-op on synchronous backends).
  virtual void synchronize() {}
  // Bytes the backend could still allocate (host: MemAvailable); sizes the KV pool.
  virtual int64_t available_memory() const;

  // --- ops ---
  // out[n, d] = table[ids[i], :] for n host ids.
  virtual void embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& out) = 0;
  // out[i, :] = x[i, :] * rsqrt(mean(x[i, :]^2) + eps) * weight. out may alias x.
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // residual += x, then out = rms_norm(residual). The fused pre-norm step.
  virtual void add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                            Tensor& out) = 0;
  // RMSNorm over each head_dim slice of x[n, heads * head_dim], in place
  // (Qwen3's q_norm / k_norm); weight is [head_dim].
  virtual void head_rms_norm(Tensor& x, int64_t head_dim, const Tensor& weight, float eps) = 0;
  // out[n, m] = x[n, k] @ w[m, k]^T (+ bias[m]).
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) = 0;
  // Rotary embedding in place on x[n, heads * head_dim], half-split layout
  // (pairs (j, j + head_dim/2)), angle = float(positions[i]) * inv_freq[j];
  // inv_freq has head_dim / 2 host entries.
  virtual void rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                    std::span<const float> inv_freq) = 0;
  // Writes k, v [n, kv_heads * head_dim] into the pools at batch.slots, then
  // out[n, heads * head_dim] = causal softmax(q k^T * scale) v per sequence,
  // with grouped-query sharing (query head h reads kv head h / (heads / kv_heads)).
  // Pools are [slots, kv_heads * head_dim] in kv_dtype.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_pool,
                         Tensor& v_pool, const AttentionBatch& batch, int64_t head_dim,
                         float scale, Tensor& out) = 0;
  // out[n, d] = silu(gate[n, d]) * up[n, d]. out may alias gate.
  virtual void silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out[i, :] = x[rows[i], :].
  virtual void gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) = 0;
};

// Creates the backend for a --device name ("cpu", "cuda"); throws Error with
// the reason when that device is unavailable.
std::unique_ptr<Backend> make_backend(const std::string& device);

}  // namespace nativelm
