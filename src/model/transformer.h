#pragma once
// The decoder-only transformer shared by Llama, Mistral, Qwen2 and Qwen3: one
// definition, written against Backend ops, with the architectural variants
// (q/k norm, q/k/v bias, tied embeddings, llama3 rope) as weights and flags.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "io/weight_store.h"
#include "model/config.h"
#include "model/forward_batch.h"

namespace nativelm {

class Transformer {
 public:
  // Maps every weight from the store (zero-copy where the backend allows);
  // throws nativelm::Error for a missing or mis-shaped tensor.
  Transformer(const ModelConfig& config, const io::WeightStore& weights, Backend& backend);
  ~Transformer();

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }
  // The KV cache dtype to use unless told otherwise: bf16 for bf16
  // checkpoints, else f32.
  DType kv_dtype() const;

  // Runs the batch, writing its K/V into `kv`, and fills `logits`
  // [batch.logit_rows.size(), vocab] (f32, backend memory).
  void forward(const ForwardBatch& batch, KvCacheTensors& kv, Tensor& logits);

 private:
  struct Layer;
  struct Workspace;

  using NamedShape = std::pair<std::string, std::vector<int64_t>>;
  static Tensor host_view(const io::WeightStore& store, const std::string& name,
                          const std::vector<int64_t>& shape);
  Tensor weight(const io::WeightStore& store, const std::string& name, std::vector<int64_t> shape);
  Tensor stacked(const io::WeightStore& store, const std::vector<NamedShape>& parts);
  std::optional<Tensor> optional_weight(const io::WeightStore& store, const std::string& name,
                                        std::vector<int64_t> shape, bool present);
  void ensure_workspace(int64_t tokens, int64_t logit_rows);
  void attention_block(const Layer& layer, const ForwardBatch& batch, Tensor& k_pool,
                       Tensor& v_pool, int64_t n);
  void mlp_block(const Layer& layer, int64_t n);
  void layers(const ForwardBatch& batch, KvCacheTensors& kv, Tensor& logits);

  ModelConfig config_;
  Backend& backend_;
  std::vector<float> inv_freq_;
  Tensor embed_tokens_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  std::unique_ptr<Workspace> ws_;
};

}  // namespace nativelm
