#include "server/sampling_fields.h"

#include <fmt/format.h>

#include "server/api_error.h"
#include "server/json_fields.h"

namespace nativelm::server {

namespace {

void read_float(const json& fields, const char* key, float& out) {
  if (auto v = get_number(fields, key)) out = static_cast<float>(*v);
}

}  // namespace

void read_common_sampling(const json& fields, int64_t vocab_size, SamplingParams& p) {
  read_float(fields, "temperature", p.temperature);
  read_float(fields, "top_p", p.top_p);
  read_float(fields, "min_p", p.min_p);
  read_float(fields, "repetition_penalty", p.repetition_penalty);
  read_float(fields, "frequency_penalty", p.frequency_penalty);
  read_float(fields, "presence_penalty", p.presence_penalty);
  if (auto v = get_int_in(fields, "top_k", -1, INT32_MAX)) p.top_k = static_cast<int32_t>(*v);
  if (auto v = get_int(fields, "seed")) p.seed = static_cast<uint64_t>(*v);
  if (auto v = get_bool(fields, "ignore_eos")) p.ignore_eos = *v;
  p.stop = get_strings(fields, "stop");
  for (const auto& s : p.stop)
    if (s.empty()) bad_param("stop", "stop strings must not be empty");
  for (int64_t id : get_int_list(fields, "stop_token_ids")) {
    if (id < 0 || id >= vocab_size)
      bad_param("stop_token_ids", fmt::format("stop token id {} is outside the vocabulary [0, {})", id, vocab_size));
    p.stop_token_ids.push_back(static_cast<int32_t>(id));
  }
}

std::map<int32_t, float> read_logit_bias(const json& body, int64_t vocab_size) {
  std::map<int32_t, float> out;
  const json* bias = get_object(body, "logit_bias");
  if (!bias) return out;
  for (const auto& [key, value] : bias->items()) {
    int64_t id = -1;
    try {
      size_t used = 0;
      id = std::stoll(key, &used);
      if (used != key.size()) id = -1;
    } catch (const std::exception&) {
      id = -1;
    }
    if (id < 0 || id >= vocab_size)
      bad_param("logit_bias", fmt::format("logit_bias key '{}' is not a token id in [0, {})", key, vocab_size));
    if (!value.is_number() || value.get<double>() < -100 || value.get<double>() > 100)
      bad_param("logit_bias", fmt::format("logit_bias for token {} must be a number in [-100, 100]", key));
    out[static_cast<int32_t>(id)] = value.get<float>();
  }
  return out;
}

void validate_sampling(const SamplingParams& params) {
  try {
    params.validate();
  } catch (const Error& e) {
    // validate() starts its message with the field's name.
    const std::string message = e.what();
    bad_param(message.substr(0, message.find(' ')), message);
  }
}

}  // namespace nativelm::server
