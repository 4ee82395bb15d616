#include "model/transformer.h"

#include <cmath>

#include "util/error.h"

namespace nativelm {

// q/k/v and gate/up are stacked into one weight each at load time: one
// matrix product instead of three (two), which matters most for decode,
// where each is a short read of the weights.
struct Transformer::Layer {
  Tensor input_norm, post_attention_norm;
  Tensor qkv_proj, o_proj;  // qkv_proj: [q_dim + 2 * kv_dim, hidden]
  std::optional<Tensor> qkv_bias, o_bias;
  std::optional<Tensor> q_norm, k_norm;
  Tensor gate_up_proj, down_proj;  // gate_up_proj: [2 * intermediate, hidden]
  std::optional<Tensor> gate_up_bias, down_bias;
};

// Activation buffers, grown on demand and reused across steps.
struct Transformer::Workspace {
  int64_t tokens = 0, logit_rows = 0;
  Tensor residual, hidden, qkv, q, attn, proj, gate_up, act, selected;
  std::vector<Tensor*> all() {
    return {&residual, &hidden, &qkv, &q, &attn, &proj, &gate_up, &act, &selected};
  }
};

Transformer::Transformer(const ModelConfig& config, const io::WeightStore& store, Backend& backend)
    : config_(config), backend_(backend), inv_freq_(rope_inv_freq(config)),
      ws_(std::make_unique<Workspace>()) {
  const auto& c = config_;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  backend_.set_model_dtype(c.dtype);
  embed_tokens_ = weight(store, "model.embed_tokens.weight", {c.vocab_size, H});
  final_norm_ = weight(store, "model.norm.weight", {H});
  const bool own_head = !c.tie_word_embeddings || store.contains("lm_head.weight");
  lm_head_ = own_head ? weight(store, "lm_head.weight", {c.vocab_size, H}) : embed_tokens_;
  layers_.resize(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    const std::string a = p + "self_attn.", m = p + "mlp.";
    Layer& l = layers_[i];
    l.input_norm = weight(store, p + "input_layernorm.weight", {H});
    l.post_attention_norm = weight(store, p + "post_attention_layernorm.weight", {H});
    l.qkv_proj = stacked(store, {{a + "q_proj.weight", {c.q_dim(), H}},
                                 {a + "k_proj.weight", {c.kv_dim(), H}},
                                 {a + "v_proj.weight", {c.kv_dim(), H}}});
    if (c.attention_bias)
      l.qkv_bias = stacked(store, {{a + "q_proj.bias", {c.q_dim()}},
                                   {a + "k_proj.bias", {c.kv_dim()}},
                                   {a + "v_proj.bias", {c.kv_dim()}}});
    l.o_proj = weight(store, a + "o_proj.weight", {H, c.q_dim()});
    l.o_bias = optional_weight(store, a + "o_proj.bias", {H}, c.attention_out_bias);
    l.q_norm = optional_weight(store, a + "q_norm.weight", {c.head_dim}, c.qk_norm);
    l.k_norm = optional_weight(store, a + "k_norm.weight", {c.head_dim}, c.qk_norm);
    l.gate_up_proj = stacked(store, {{m + "gate_proj.weight", {I, H}}, {m + "up_proj.weight", {I, H}}});
    if (c.mlp_bias)
      l.gate_up_bias = stacked(store, {{m + "gate_proj.bias", {I}}, {m + "up_proj.bias", {I}}});
    l.down_proj = weight(store, m + "down_proj.weight", {H, I});
    l.down_bias = optional_weight(store, m + "down_proj.bias", {H}, c.mlp_bias);
  }
}

Transformer::~Transformer() {
  for (Tensor* t : ws_->all())
    if (!t->empty()) backend_.free(*t);
}

DType Transformer::kv_dtype() const {
  // As transformers and SGLang do, a bf16 model keeps its KV cache in bf16
  // (half the attention traffic). Otherwise the cache takes the activation
  // dtype: f32 on the CPU, the model's own dtype on a GPU.
  return config_.dtype == DType::BF16 ? DType::BF16 : backend_.activation_dtype();
}

Tensor Transformer::host_view(const io::WeightStore& store, const std::string& name,
                              const std::vector<int64_t>& shape) {
  const io::TensorView& view = store.get(name, shape);
  Tensor host(const_cast<std::byte*>(view.data), *view.dtype, {});
  for (int64_t d : shape) host.shape[host.ndim++] = d;
  return host;
}

Tensor Transformer::weight(const io::WeightStore& store, const std::string& name,
                           std::vector<int64_t> shape) {
  return backend_.upload_weight(host_view(store, name, shape));
}

Tensor Transformer::stacked(const io::WeightStore& store, const std::vector<NamedShape>& parts) {
  std::vector<Tensor> hosts;
  for (const auto& [name, shape] : parts) hosts.push_back(host_view(store, name, shape));
  for (const Tensor& h : hosts)
    if (h.dtype != hosts[0].dtype)
      fail("{} and {} have different dtypes; they must match to be fused", parts[0].first,
           parts[&h - hosts.data()].first);
  return backend_.upload_stacked(hosts);
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
    for (Tensor* t : {&w.residual, &w.hidden, &w.qkv, &w.q, &w.attn, &w.proj, &w.gate_up, &w.act})
      if (!t->empty()) backend_.free(*t);
    w.residual = backend_.alloc(a, {n, c.hidden_size});
    w.hidden = backend_.alloc(a, {n, c.hidden_size});
    w.qkv = backend_.alloc(a, {n, c.q_dim() + 2 * c.kv_dim()});
    w.q = backend_.alloc(a, {n, c.q_dim()});
    w.attn = backend_.alloc(a, {n, c.q_dim()});
    w.proj = backend_.alloc(a, {n, c.hidden_size});
    w.gate_up = backend_.alloc(a, {n, 2 * c.intermediate_size});
    w.act = backend_.alloc(a, {n, c.intermediate_size});
    w.tokens = n;
    backend_.drop_recordings();
  }
  if (rows > w.logit_rows) {
    if (!w.selected.empty()) backend_.free(w.selected);
    w.selected = backend_.alloc(a, {rows, c.hidden_size});
    w.logit_rows = rows;
    backend_.drop_recordings();
  }
}

// The block's seams are fused ops (norm + projection, projection +
// residual add); a backend without fused kernels runs them in two steps
// through the scratch buffers given.
void Transformer::attention_block(const Layer& l, const ForwardBatch& batch, Tensor& k_pool,
                                  Tensor& v_pool, int64_t n) {
  auto& w = *ws_;
  const auto& c = config_;
  Tensor residual = w.residual.rows(0, n), hidden = w.hidden.rows(0, n), qkv = w.qkv.rows(0, n);
  Tensor q = w.q.rows(0, n), attn = w.attn.rows(0, n), proj = w.proj.rows(0, n);
  const float eps = static_cast<float>(c.rms_norm_eps);
  backend_.norm_linear(residual, l.input_norm, eps, l.qkv_proj, l.qkv_bias ? &*l.qkv_bias : nullptr, hidden, qkv);
  const QkvLayout layout{c.num_heads, c.num_kv_heads, c.head_dim};
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  backend_.prepare_attention(qkv, layout, l.q_norm ? &*l.q_norm : nullptr, l.k_norm ? &*l.k_norm : nullptr, eps,
                             batch.positions, inv_freq_, batch.attention, scale, k_pool, v_pool, q, attn);
  backend_.linear_add(attn, l.o_proj, l.o_bias ? &*l.o_bias : nullptr, residual, proj);
}

void Transformer::mlp_block(const Layer& l, int64_t n) {
  auto& w = *ws_;
  Tensor residual = w.residual.rows(0, n), hidden = w.hidden.rows(0, n), gate_up = w.gate_up.rows(0, n);
  Tensor act = w.act.rows(0, n), proj = w.proj.rows(0, n);
  backend_.norm_linear_swiglu(residual, l.post_attention_norm, static_cast<float>(config_.rms_norm_eps),
                              l.gate_up_proj, l.gate_up_bias ? &*l.gate_up_bias : nullptr, hidden, gate_up, act);
  backend_.linear_add(act, l.down_proj, l.down_bias ? &*l.down_bias : nullptr, residual, proj);
}

void Transformer::forward(const ForwardBatch& batch, KvCacheTensors& kv, Tensor& logits) {
  const auto& c = config_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  if (n == 0) fail("forward: empty batch");
  for (int32_t t : batch.tokens)
    if (t < 0 || t >= c.vocab_size) fail("token id {} is outside the vocabulary (0..{})", t, c.vocab_size - 1);
  ensure_workspace(n, rows);
  backend_.begin_step({batch.tokens, batch.positions, batch.logit_rows, &batch.attention, batch.from_pick});
  backend_.run_recorded(batch.graph_key, [&] { layers(batch, kv, logits); });
  backend_.end_step();
}

void Transformer::layers(const ForwardBatch& batch, KvCacheTensors& kv, Tensor& logits) {
  auto& w = *ws_;
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  const int64_t rows = static_cast<int64_t>(batch.logit_rows.size());
  Tensor residual = w.residual.rows(0, n);
  backend_.embedding(embed_tokens_, batch.tokens, residual);
  for (size_t i = 0; i < layers_.size(); ++i) {
    attention_block(layers_[i], batch, kv.k[i], kv.v[i], n);
    mlp_block(layers_[i], n);
  }
  // Only the rows whose logits are wanted get the final norm and the head
  // (a decode step wants every row in order: no gather).
  bool every_row = rows == n;
  for (int64_t i = 0; every_row && i < rows; ++i) every_row = batch.logit_rows[static_cast<size_t>(i)] == i;
  Tensor selected = every_row ? residual : w.selected.rows(0, rows);
  if (!every_row) backend_.gather_rows(residual, batch.logit_rows, selected);
  Tensor normed = w.hidden.rows(0, rows);
  backend_.norm_linear(selected, final_norm_, static_cast<float>(config_.rms_norm_eps), lm_head_, nullptr, normed,
                       logits);
}

}  // namespace nativelm
