#include "model/config.h"

#include <cmath>
#include <numbers>
#include <optional>

#include "io/json_file.h"
#include "util/error.h"

namespace nativelm {

namespace {

using json = nlohmann::json;

int64_t required_int(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_number_integer())
    fail("config.json: '{}' is missing or not an integer", key);
  return j[key].get<int64_t>();
}

template <typename T>
T optional_value(const json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return j[key].get<T>();
}

std::vector<int32_t> id_list(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return {};
  if (j[key].is_number_integer()) return {j[key].get<int32_t>()};
  return j[key].get<std::vector<int32_t>>();
}

DType parse_dtype(const json& j) {
  std::string name = optional_value<std::string>(j, "dtype", "");
  if (name.empty()) name = optional_value<std::string>(j, "torch_dtype", "float32");
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  fail("config.json: dtype '{}' is not supported (float32, float16 or bfloat16)", name);
}

// rope_scaling (classic) and rope_parameters (transformers 5) carry the same
// keys; the latter also holds rope_theta.
RopeConfig parse_rope(const json& j) {
  RopeConfig rope;
  rope.theta = optional_value<double>(j, "rope_theta", 10000.0);
  json params;
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) params = j["rope_parameters"];
  else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) params = j["rope_scaling"];
  if (params.is_null()) return rope;
  rope.theta = optional_value<double>(params, "rope_theta", rope.theta);
  rope.type = optional_value<std::string>(params, "rope_type", optional_value<std::string>(params, "type", "default"));
  if (rope.type == "default") return rope;
  if (rope.type != "llama3")
    fail("config.json: rope scaling type '{}' is not supported (default or llama3)", rope.type);
  rope.factor = optional_value<double>(params, "factor", 8.0);
  rope.low_freq_factor = optional_value<double>(params, "low_freq_factor", 1.0);
  rope.high_freq_factor = optional_value<double>(params, "high_freq_factor", 4.0);
  rope.original_max_position_embeddings =
      optional_value<int64_t>(params, "original_max_position_embeddings", 8192);
  return rope;
}

void check_supported(const json& j, const ModelConfig& c) {
  const std::string act = optional_value<std::string>(j, "hidden_act", "silu");
  if (act != "silu") fail("config.json: hidden_act '{}' is not supported (silu)", act);
  const bool uses_window = optional_value<bool>(j, "use_sliding_window", c.model_type == "mistral");
  const auto window = optional_value<int64_t>(j, "sliding_window", 0);
  if (uses_window && window > 0 && window < c.max_position_embeddings)
    fail("config.json: sliding-window attention (sliding_window={}) is not supported", window);
  if (optional_value<double>(j, "partial_rotary_factor", 1.0) != 1.0)
    fail("config.json: partial_rotary_factor is not supported");
  if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    fail("config.json: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
         c.num_heads, c.num_kv_heads);
  if (c.head_dim <= 0 || c.head_dim % 2 != 0)
    fail("config.json: head_dim {} must be positive and even", c.head_dim);
}

}  // namespace

ModelConfig parse_model_config(const json& j) {
  try {
    ModelConfig c;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty())
      fail("config.json: 'architectures' is missing");
    c.architecture = j["architectures"][0].get<std::string>();
    c.model_type = optional_value<std::string>(j, "model_type", "");
    static const std::vector<std::string> supported = {"Qwen3ForCausalLM", "Qwen2ForCausalLM",
                                                       "LlamaForCausalLM", "MistralForCausalLM"};
    if (std::find(supported.begin(), supported.end(), c.architecture) == supported.end())
      fail("architecture '{}' is not supported (supported: Qwen3ForCausalLM, Qwen2ForCausalLM, "
           "LlamaForCausalLM, MistralForCausalLM)",
           c.architecture);
    c.hidden_size = required_int(j, "hidden_size");
    c.intermediate_size = required_int(j, "intermediate_size");
    c.num_layers = required_int(j, "num_hidden_layers");
    c.num_heads = required_int(j, "num_attention_heads");
    c.num_kv_heads = optional_value<int64_t>(j, "num_key_value_heads", c.num_heads);
    c.head_dim = optional_value<int64_t>(j, "head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : 0);
    c.vocab_size = required_int(j, "vocab_size");
    c.max_position_embeddings = optional_value<int64_t>(j, "max_position_embeddings", 4096);
    c.rms_norm_eps = optional_value<double>(j, "rms_norm_eps", 1e-6);
    c.rope = parse_rope(j);
    c.tie_word_embeddings = optional_value<bool>(j, "tie_word_embeddings", false);
    c.qk_norm = c.architecture == "Qwen3ForCausalLM";
    c.attention_bias = c.architecture == "Qwen2ForCausalLM" || optional_value<bool>(j, "attention_bias", false);
    c.attention_out_bias = c.architecture != "Qwen2ForCausalLM" && c.attention_bias;
    c.mlp_bias = optional_value<bool>(j, "mlp_bias", false);
    c.dtype = parse_dtype(j);
    c.eos_token_ids = id_list(j, "eos_token_id");
    if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
      c.bos_token_id = j["bos_token_id"].get<int32_t>();
    check_supported(j, c);
    return c;
  } catch (const json::exception& e) {
    fail("config.json has a field of the wrong type: {}", e.what());
  }
}

ModelConfig load_model_config(const std::filesystem::path& model_dir) {
  const auto path = model_dir / "config.json";
  if (!std::filesystem::exists(path)) fail("{} has no config.json", model_dir.string());
  return parse_model_config(io::read_json_file(path));
}

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  std::vector<float> inv(dim / 2);
  const float base = static_cast<float>(config.rope.theta);
  for (int64_t i = 0; i < dim / 2; ++i)
    inv[i] = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(dim));
  if (config.rope.type != "llama3") return inv;
  const float factor = static_cast<float>(config.rope.factor);
  const float low = static_cast<float>(config.rope.low_freq_factor);
  const float high = static_cast<float>(config.rope.high_freq_factor);
  const float old_len = static_cast<float>(config.rope.original_max_position_embeddings);
  const float low_wavelen = old_len / low, high_wavelen = old_len / high;
  for (auto& f : inv) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
    if (wavelen < high_wavelen) continue;       // high frequency: unchanged
    if (wavelen > low_wavelen) {                // low frequency: fully scaled
      f = f / factor;
      continue;
    }
    const float smooth = (old_len / wavelen - low) / (high - low);
    f = (1.0f - smooth) * f / factor + smooth * f;
  }
  return inv;
}

}  // namespace nativelm
