#pragma once
// The architecture hyper-parameters nativelm needs, read from a Hugging Face
// config.json in either the Hub's classic form (rope_theta, rope_scaling,
// torch_dtype) or the form transformers 5 writes (rope_parameters, dtype).
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "util/dtype.h"

namespace nativelm {

struct RopeConfig {
  double theta = 10000.0;
  std::string type = "default";  // "default" or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "Qwen3ForCausalLM"
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool tie_word_embeddings = false;
  bool attention_bias = false;   // q/k/v projections carry a bias (Qwen2)
  bool attention_out_bias = false;
  bool mlp_bias = false;
  bool qk_norm = false;          // per-head RMSNorm on q and k (Qwen3)
  DType dtype = DType::F32;      // the checkpoint's declared dtype
  std::vector<int32_t> eos_token_ids;
  std::optional<int32_t> bos_token_id;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
};

// Throws nativelm::Error naming the field for anything unsupported or missing.
ModelConfig parse_model_config(const nlohmann::json& json);
ModelConfig load_model_config(const std::filesystem::path& model_dir);

// The rotary inverse frequencies (head_dim / 2 values) as transformers
// computes them in float32, including llama3 scaling.
std::vector<float> rope_inv_freq(const ModelConfig& config);

}  // namespace nativelm
