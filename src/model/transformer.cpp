#include "model/transformer.h"

#include <cmath>

#include "util/error.h"

namespace nativelm {

struct Transformer::Layer {
  Tensor input_norm, post_attention_norm;
  Tensor q_proj, k_proj, v_proj, o_proj;
  std::optional<Tensor> q_bias, k_bias, v_bias, o_bias;
  std::optional<Tensor> q_norm, k_norm;
  Tensor gate_proj, up_proj, down_proj;
  std::optional<Tensor> gate_bias, up_bias, down_bias;
};

// Activation buffers, grown on demand and reused across steps.
struct Transformer::Workspace {
  int64_t tokens = 0, logit_rows = 0;
  Tensor residual, hidden, q, k, v, attn, proj, gate, up, selected;
};

Transformer::Transformer(const ModelConfig& config, const io::WeightStore& store, Backend& backend)
    : config_(config), backend_(backend), inv_freq_(rope_inv_freq(config)),
      ws_(std::make_unique<Workspace>()) {
  const auto& c = config_;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  embed_tokens_ = weight(store, "model.embed_tokens.weight", {c.vocab_size, H});
  final_norm_ = weight(store, "model.norm.weight", {H});
  const bool own_head = !c.tie_word_embeddings || store.contains("lm_head.weight");
  lm_head_ = own_head ? weight(store, "lm_head.weight", {c.vocab_size, H}) : embed_tokens_;
  layers_.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer& l = layers_[i];
    l.input_norm = weight(store, p + "input_layernorm.weight", {H});
    l.post_attention_norm = weight(store, p + "post_attention_layernorm.weight", {H});
    l.q_proj = weight(store, p + "self_attn.q_proj.weight", {c.q_dim(), H});
    l.k_proj = weight(store, p + "self_attn.k_proj.weight", {c.kv_dim(), H});
    l.v_proj = weight(store, p + "self_attn.v_proj.weight", {c.kv_dim(), H});
    l.o_proj = weight(store, p + "self_attn.o_proj.weight", {H, c.q_dim()});
    l.q_bias = optional_weight(store, p + "self_attn.q_proj.bias", {c.q_dim()}, c.attention_bias);
    l.k_bias = optional_weight(store, p + "self_attn.k_proj.bias", {c.kv_dim()}, c.attention_bias);
    l.v_bias = optional_weight(store, p + "self_attn.v_proj.bias", {c.kv_dim()}, c.attention_bias);
    l.o_bias = optional_weight(store, p + "self_attn.o_proj.bias", {H}, c.attention_out_bias);
    l.q_norm = optional_weight(store, p + "self_attn.q_norm.weight", {c.head_dim}, c.qk_norm);
    l.k_norm = optional_weight(store, p + "self_attn.k_norm.weight", {c.head_dim}, c.qk_norm);
    l.gate_proj = weight(store, p + "mlp.gate_proj.weight", {I, H});
    l.up_proj = weight(store, p + "mlp.up_proj.weight", {I, H});
    l.down_proj = weight(store, p + "mlp.down_proj.weight", {H, I});
    l.gate_bias = optional_weight(store, p + "mlp.gate_proj.bias", {I}, c.mlp_bias);
    l.up_bias = optional_weight(store, p + "mlp.up_proj.bias", {I}, c.mlp_bias);
    l.down_bias = optional_weight(store, p + "mlp.down_proj.bias", {H}, c.mlp_bias);
  }
}

Transformer::~Transformer() {
  auto& w = *ws_;
  for (Tensor* t : {&w.residual, &w.hidden, &w.q, &w.k, &w.v, &w.attn, &w.proj, &w.gate, &w.up,
                    &w.selected})
    if (!t->empty()) backend_.free(*t);
}

DType Transformer::kv_dtype() const {
  // As transformers and SGLang do, a bf16 model keeps its KV cache in bf16
  // (half the attention traffic); f16 has too little range to be safe there.
  return config_.dtype == DType::BF16 ? DType::BF16 : DType::F32;
}

Tensor Transformer::weight(const io::WeightStore& store, const std::string& name,
                           std::vector<int64_t> shape) {
  const io::TensorView& view = store.get(name, shape);
  Tensor host(const_cast<std::byte*>(view.data), *view.dtype, {});
  for (int64_t d : shape) host.shape[host.ndim++] = d;
  return backend_.upload_weight(host);
}

std::optional<Tensor> Transformer::optional_weight(const io::WeightStore& store,
                                                   const std::string& name,
                                                   std::vector<int64_t> shape, bool present) {
  if (!present) return std::nullopt;
  return weight(store, name, std::move(shape));
}

void Transformer::ensure_workspace(int64_t n, int64_t rows) {
  auto& w = *ws_;
  const auto& c = config_;
  const DType a = backend_.activation_dtype();
  if (n > w.tokens) {
    for (Tensor* t : {&w.residual, &w.hidden, &w.q, &w.k, &w.v, &w.attn, &w.proj, &w.gate, &w.up})
      if (!t->empty()) backend_.free(*t);
    w.residual = backend_.alloc(a, {n, c.hidden_size});
    w.hidden = backend_.alloc(a, {n, c.hidden_size});
    w.q = backend_.alloc(a, {n, c.q_dim()});
    w.k = backend_.alloc(a, {n, c.kv_dim()});
    w.v = backend_.alloc(a, {n, c.kv_dim()});
    w.attn = backend_.alloc(a, {n, c.q_dim()});
    w.proj = backend_.alloc(a, {n, c.hidden_size});
    w.gate = backend_.alloc(a, {n, c.intermediate_size});
    w.up = backend_.alloc(a, {n, c.intermediate_size});
    w.tokens = n;
  }
  if (rows > w.logit_rows) {
    if (!w.selected.empty()) backend_.free(w.selected);
    w.selected = backend_.alloc(a, {rows, c.hidden_size});
    w.logit_rows = rows;
  }
}

void Transformer::attention_block(const Layer& l, const ForwardBatch& batch, Tensor& k_pool,
                                  Tensor& v_pool, int64_t n) {
  auto& w = *ws_;
  const auto& c = config_;
  Tensor hidden = w.hidden.rows(0, n), q = w.q.rows(0, n), k = w.k.rows(0, n), v = w.v.rows(0, n);
  Tensor attn = w.attn.rows(0, n), proj = w.proj.rows(0, n);
  backend_.linear(hidden, l.q_proj, l.q_bias ? &*l.q_bias : nullptr, q);
  backend_.linear(hidden, l.k_proj, l.k_bias ? &*l.k_bias : nullptr, k);
  backend_.linear(hidden, l.v_proj, l.v_bias ? &*l.v_bias : nullptr, v);
  if (l.q_norm) {
    backend_.head_rms_norm(q, c.head_dim, *l.q_norm, static_cast<float>(c.rms_norm_eps));
    backend_.head_rms_norm(k, c.head_dim, *l.k_norm, static_cast<float>(c.rms_norm_eps));
  }
  backend_.rope(q, c.head_dim, batch.positions, inv_freq_);
  backend_.rope(k, c.head_dim, batch.positions, inv_freq_);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  backend_.attention(q, k, v, k_pool, v_pool, batch.attention, c.head_dim, scale, attn);
  backend_.linear(attn, l.o_proj, l.o_bias ? &*l.o_bias : nullptr, proj);
}

void Transformer::mlp_block(const Layer& l, int64_t n) {
  auto& w = *ws_;
  Tensor hidden = w.hidden.rows(0, n), gate = w.gate.rows(0, n), up = w.up.rows(0, n);
  Tensor proj = w.proj.rows(0, n);
  backend_.linear(hidden, l.gate_proj, l.gate_bias ? &*l.gate_bias : nullptr, gate);
  backend_.linear(hidden, l.up_proj, l.up_bias ? &*l.up_bias : nullptr, up);
  backend_.silu_mul(gate, up, gate);
  backend_.linear(gate, l.down_proj, l.down_bias ? &*l.down_bias : nullptr, proj);
}

void Transformer::forward(const ForwardBatch& batch, KvCacheTensors& kv, Tensor& logits) {
  const auto& c = config_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  if (n == 0) fail("forward: empty batch");
  for (int32_t t : batch.tokens)
    if (t < 0 || t >= c.vocab_size) fail("token id {} is outside the vocabulary (0..{})", t, c.vocab_size - 1);
  ensure_workspace(n, rows);
  auto& w = *ws_;
  Tensor residual = w.residual.rows(0, n), hidden = w.hidden.rows(0, n), proj = w.proj.rows(0, n);
  const float eps = static_cast<float>(c.rms_norm_eps);

  backend_.embedding(embed_tokens_, batch.tokens, residual);
  backend_.rms_norm(residual, layers_[0].input_norm, eps, hidden);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    attention_block(l, batch, kv.k[i], kv.v[i], n);
    backend_.add_rms_norm(residual, proj, l.post_attention_norm, eps, hidden);
    mlp_block(l, n);
    const Tensor& next_norm = i + 1 < layers_.size() ? layers_[i + 1].input_norm : final_norm_;
    backend_.add_rms_norm(residual, proj, next_norm, eps, hidden);
  }
  Tensor selected = w.selected.rows(0, rows);
  backend_.gather_rows(hidden, batch.logit_rows, selected);
  backend_.linear(selected, lm_head_, nullptr, logits);
}

}  // namespace nativelm
