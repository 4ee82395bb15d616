#include "checkpoint/qwen3_shape.h"

#include <fmt/format.h>

#include "util/error.h"

namespace nativelm::tools {

namespace {
// The Hub's Qwen3 tokenizer ids (<|endoftext|>, <|im_end|>).
constexpr int64_t kEndOfText = 151643;
constexpr int64_t kImEnd = 151645;
}  // namespace

int64_t TensorSpec::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Qwen3Shape qwen3_shape(std::string_view id) {
  if (id == "qwen3-0.6b") return {std::string(id), 1024, 28, 16, 8, 128, 3072, 151936, true};
  if (id == "qwen3-8b") return {std::string(id), 4096, 36, 32, 8, 128, 12288, 151936, false};
  if (id == "qwen3-test") return {std::string(id), 64, 2, 4, 2, 32, 96, 1000, false};
  fail("unknown --shape '{}': expected qwen3-0.6b, qwen3-8b or qwen3-test", id);
}

std::vector<TensorSpec> qwen3_tensors(const Qwen3Shape& s) {
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  std::vector<TensorSpec> t{{"model.embed_tokens.weight", {s.vocab, s.hidden}, false}};
  for (int64_t i = 0; i < s.layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    t.push_back({p + "input_layernorm.weight", {s.hidden}, true});
    t.push_back({p + "self_attn.q_proj.weight", {q, s.hidden}, false});
    t.push_back({p + "self_attn.k_proj.weight", {kv, s.hidden}, false});
    t.push_back({p + "self_attn.v_proj.weight", {kv, s.hidden}, false});
    t.push_back({p + "self_attn.o_proj.weight", {s.hidden, q}, false});
    t.push_back({p + "self_attn.q_norm.weight", {s.head_dim}, true});
    t.push_back({p + "self_attn.k_norm.weight", {s.head_dim}, true});
    t.push_back({p + "post_attention_layernorm.weight", {s.hidden}, true});
    t.push_back({p + "mlp.gate_proj.weight", {s.intermediate, s.hidden}, false});
    t.push_back({p + "mlp.up_proj.weight", {s.intermediate, s.hidden}, false});
    t.push_back({p + "mlp.down_proj.weight", {s.hidden, s.intermediate}, false});
  }
  t.push_back({"model.norm.weight", {s.hidden}, true});
  if (!s.tied) t.push_back({"lm_head.weight", {s.vocab, s.hidden}, false});
  return t;
}

nlohmann::json qwen3_config(const Qwen3Shape& s, DType dtype) {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"attention_bias", false},
          {"attention_dropout", 0.0},
          {"bos_token_id", kEndOfText},
          {"eos_token_id", kImEnd},
          {"head_dim", s.head_dim},
          {"hidden_act", "silu"},
          {"hidden_size", s.hidden},
          {"initializer_range", 0.02},
          {"intermediate_size", s.intermediate},
          {"max_position_embeddings", 40960},
          {"max_window_layers", s.layers},
          {"model_type", "qwen3"},
          {"num_attention_heads", s.heads},
          {"num_hidden_layers", s.layers},
          {"num_key_value_heads", s.kv_heads},
          {"rms_norm_eps", 1e-6},
          {"rope_scaling", nullptr},
          {"rope_theta", 1000000.0},
          {"sliding_window", nullptr},
          {"tie_word_embeddings", s.tied},
          {"torch_dtype", dtype_name(dtype)},
          {"use_cache", true},
          {"use_sliding_window", false},
          {"vocab_size", s.vocab}};
}

nlohmann::json qwen3_generation_config() {
  return {{"bos_token_id", kEndOfText}, {"do_sample", true},  {"eos_token_id", {kImEnd, kEndOfText}},
          {"pad_token_id", kEndOfText}, {"temperature", 0.6}, {"top_k", 20},
          {"top_p", 0.95}};
}

}  // namespace nativelm::tools
