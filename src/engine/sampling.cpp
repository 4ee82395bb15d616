#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "backend/backend.h"
#include "io/json_file.h"
#include "util/error.h"

namespace nativelm {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || temperature > 100.0f) fail("temperature must be in [0, 100], got {}", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p must be in [0, 1], got {}", min_p);
  if (top_k < -1) fail("top_k must be -1, 0 or positive, got {}", top_k);
  if (!(repetition_penalty > 0.0f)) fail("repetition_penalty must be positive, got {}", repetition_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    fail("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    fail("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  if (max_new_tokens < 0) fail("max_new_tokens must not be negative, got {}", max_new_tokens);
  if (min_new_tokens < 0 || min_new_tokens > max_new_tokens)
    fail("min_new_tokens must be in [0, max_new_tokens], got {}", min_new_tokens);
}

GenerationDefaults GenerationDefaults::load(const std::filesystem::path& model_dir) {
  GenerationDefaults d;
  const auto path = model_dir / "generation_config.json";
  if (!std::filesystem::exists(path)) return d;
  const auto j = io::read_json_file(path);
  try {
    if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
      if (j["eos_token_id"].is_array()) d.eos_token_ids = j["eos_token_id"].get<std::vector<int32_t>>();
      else d.eos_token_ids = {j["eos_token_id"].get<int32_t>()};
    }
    auto get = [&](const char* key, auto& field) {
      if (j.contains(key) && !j[key].is_null()) field = j[key].get<typename std::decay_t<decltype(field)>::value_type>();
    };
    get("do_sample", d.do_sample);
    get("temperature", d.temperature);
    get("top_p", d.top_p);
    get("top_k", d.top_k);
    get("min_p", d.min_p);
    get("repetition_penalty", d.repetition_penalty);
  } catch (const nlohmann::json::exception& e) {
    fail("{} has a field of the wrong type: {}", path.string(), e.what());
  }
  return d;
}

SamplingParams GenerationDefaults::base_params() const {
  SamplingParams p;
  if (do_sample.has_value() && !*do_sample) {
    p.temperature = 0.0f;
    return p;
  }
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (min_p) p.min_p = *min_p;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  return p;
}

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_(params.seed ? *params.seed : std::random_device{}()) {}

void Sampler::apply_penalties(std::span<float> logits, std::span<const int32_t> prompt,
                              std::span<const int32_t> output) const {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (params_.repetition_penalty != 1.0f) {
    std::vector<bool> seen(vocab, false);
    for (auto ids : {prompt, output})
      for (int32_t t : ids)
        if (t >= 0 && t < vocab) seen[t] = true;
    for (int64_t t = 0; t < vocab; ++t)
      if (seen[t]) logits[t] = logits[t] > 0 ? logits[t] / params_.repetition_penalty : logits[t] * params_.repetition_penalty;
  }
  if (params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f) {
    std::unordered_map<int32_t, int> counts;
    for (int32_t t : output) ++counts[t];
    for (auto [t, n] : counts)
      if (t >= 0 && t < vocab)
        logits[t] -= std::fma(params_.frequency_penalty, static_cast<float>(n), params_.presence_penalty);
  }
}

float Sampler::uniform() {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  return std::min(static_cast<float>(u), std::nextafter(1.0f, 0.0f));
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> output) {
  apply_penalties(logits, prompt, output);
  if (params_.greedy()) return argmax(logits);

  // The same rule and draw as a pick on the device (Backend::sample).
  const float u = uniform();
  return pick_token(logits, TokenPick{params_.temperature, params_.top_k, params_.top_p, params_.min_p, u, {}});
}

}  // namespace nativelm
