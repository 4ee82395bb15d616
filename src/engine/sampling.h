#pragma once
// Sampling parameters, their defaults from generation_config.json, and the
// sampler that turns one row of logits into a token.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace nativelm {

struct SamplingParams {
  float temperature = 1.0f;  // 0 means greedy
  int32_t top_k = 0;         // 0 or negative: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // HF style: over prompt and output tokens
  float frequency_penalty = 0.0f;   // OpenAI style: over output tokens
  float presence_penalty = 0.0f;
  std::optional<uint64_t> seed;
  int32_t max_new_tokens = 128;
  int32_t min_new_tokens = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;

  bool greedy() const { return temperature <= 1e-5f || top_k == 1; }
  // Throws nativelm::Error naming the first out-of-range parameter.
  void validate() const;
};

// What generation_config.json (and config.json) say about decoding.
struct GenerationDefaults {
  std::vector<int32_t> eos_token_ids;
  std::optional<bool> do_sample;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;

  // Parses generation_config.json if the folder has one.
  static GenerationDefaults load(const std::filesystem::path& model_dir);
  // Sampling parameters a request starts from before its own overrides.
  SamplingParams base_params() const;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks the next token from logits (modified in place by penalties).
  // `prompt` and `output` are the tokens so far, for the penalties. After
  // the penalties it is pick_token() with a uniform() draw, so a seeded
  // request picks the same tokens on the host as on a device.
  int32_t sample(std::span<float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> output);
  // A draw in [0, 1) from this sampler's generator (for sampling done elsewhere).
  float uniform();

 private:
  void apply_penalties(std::span<float> logits, std::span<const int32_t> prompt,
                       std::span<const int32_t> output) const;

  SamplingParams params_;
  std::mt19937_64 rng_;
};

// Index of the largest value (the first one on ties, as torch.argmax).
int32_t argmax(std::span<const float> values);

}  // namespace nativelm
