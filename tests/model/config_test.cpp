#include "model/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "util/error.h"

namespace nativelm {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

json qwen3_classic() {
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024,
    "intermediate_size": 3072, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936, "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "rope_scaling": null, "tie_word_embeddings": true,
    "torch_dtype": "bfloat16", "hidden_act": "silu", "sliding_window": null, "use_sliding_window": false,
    "eos_token_id": 151645, "bos_token_id": 151643})");
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelConfig, ClassicHubForm) {
  auto c = parse_model_config(qwen3_classic());
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.q_dim(), 2048);  // head_dim differs from hidden / heads
  EXPECT_EQ(c.kv_dim(), 1024);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.dtype, DType::BF16);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.eos_token_ids, std::vector<int32_t>{151645});
}

TEST(ModelConfig, TransformersFiveForm) {
  json j = qwen3_classic();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
  auto c = parse_model_config(j);
  EXPECT_EQ(c.dtype, DType::F16);
  EXPECT_DOUBLE_EQ(c.rope.theta, 5e5);
  EXPECT_EQ(c.rope.type, "default");
}

TEST(ModelConfig, Llama3RopeScaling) {
  json j = qwen3_classic();
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["head_dim"] = 64;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto c = parse_model_config(j);
  EXPECT_FALSE(c.qk_norm);
  ASSERT_EQ(c.rope.type, "llama3");
  auto inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 32u);
  // High frequencies (short wavelengths) are unchanged, the lowest are divided by the factor.
  EXPECT_FLOAT_EQ(inv[0], 1.0f);
  const float plain_last = 1.0f / std::pow(500000.0f, 62.0f / 64.0f);
  EXPECT_NEAR(inv[31], plain_last / 8.0f, 1e-12f);
  // In between, the smoothed value lies between the scaled and unscaled ones.
  for (size_t i = 0; i < inv.size(); ++i) {
    const float plain = 1.0f / std::pow(500000.0f, 2.0f * i / 64.0f);
    EXPECT_LE(inv[i], plain * 1.000001f);
    EXPECT_GE(inv[i], plain / 8.0f * 0.999999f);
  }
}

TEST(ModelConfig, Qwen2HasQkvBias) {
  json j = qwen3_classic();
  j["architectures"] = {"Qwen2ForCausalLM"};
  auto c = parse_model_config(j);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.attention_out_bias);
  EXPECT_FALSE(c.qk_norm);
}

TEST(ModelConfig, RejectsUnsupported) {
  json j = qwen3_classic();
  j["architectures"] = {"GPT2LMHeadModel"};
  EXPECT_THAT(error_of(j), HasSubstr("architecture 'GPT2LMHeadModel' is not supported"));

  j = qwen3_classic();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THAT(error_of(j), HasSubstr("rope scaling type 'yarn' is not supported"));

  j = qwen3_classic();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j.erase("use_sliding_window");  // Mistral configs have only sliding_window
  j["sliding_window"] = 4096;
  EXPECT_THAT(error_of(j), HasSubstr("sliding-window attention"));

  j = qwen3_classic();
  j["torch_dtype"] = "float8_e4m3fn";
  EXPECT_THAT(error_of(j), HasSubstr("dtype 'float8_e4m3fn' is not supported"));

  j = qwen3_classic();
  j["hidden_act"] = "gelu";
  EXPECT_THAT(error_of(j), HasSubstr("hidden_act 'gelu'"));

  j = qwen3_classic();
  j["num_key_value_heads"] = 3;
  EXPECT_THAT(error_of(j), HasSubstr("must be a multiple"));
}

TEST(ModelConfig, MissingOrMistypedFields) {
  json j = qwen3_classic();
  j.erase("hidden_size");
  EXPECT_THAT(error_of(j), HasSubstr("'hidden_size' is missing"));
  j = qwen3_classic();
  j["rms_norm_eps"] = "small";
  EXPECT_THAT(error_of(j), HasSubstr("wrong type"));
  j = qwen3_classic();
  j.erase("architectures");
  EXPECT_THAT(error_of(j), HasSubstr("'architectures' is missing"));
}

TEST(ModelConfig, MistralWithoutWindowIsFine) {
  json j = qwen3_classic();
  j["architectures"] = {"MistralForCausalLM"};
  j["model_type"] = "mistral";
  j["sliding_window"] = nullptr;
  EXPECT_NO_THROW(parse_model_config(j));
}

}  // namespace
}  // namespace nativelm
