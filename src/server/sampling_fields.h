#pragma once
// Sampling parameters read from a request: OpenAI's top-level fields (plus the
// extras SGLang accepts there) or SGLang's `sampling_params` object. Values
// the request does not give keep the model's generation_config.json defaults.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>

#include "engine/sampling.h"

namespace nativelm::server {

// temperature, top_p, top_k, min_p, the three penalties, stop,
// stop_token_ids, seed, ignore_eos: the names OpenAI and SGLang share.
// `vocab_size` bounds stop_token_ids.
void read_common_sampling(const nlohmann::json& fields, int64_t vocab_size, SamplingParams& params);

// OpenAI's logit_bias: {"token id": bias in [-100, 100]}.
std::map<int32_t, float> read_logit_bias(const nlohmann::json& body, int64_t vocab_size);

// SamplingParams::validate() as a 400 whose `param` names the bad field.
void validate_sampling(const SamplingParams& params);

}  // namespace nativelm::server
