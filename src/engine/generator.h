#pragma once
// One request from prompt to finish: prefill, then sample / decode / stream
// until EOS, a stop token or string, or the token limit.
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "engine/sampling.h"

namespace nativelm {

struct GenerationOutput {
  std::vector<int32_t> tokens;  // generated ids, without the stop token
  std::string text;
  std::string finish_reason;    // "stop" or "length"
  std::optional<std::string> matched_stop;  // the stop string, if one ended it
  std::optional<int32_t> matched_stop_token;
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;  // from the first sampled token to the last
};

using TextCallback = std::function<void(std::string_view)>;

GenerationOutput generate(LoadedModel& model, ModelRunner& runner, std::span<const int32_t> prompt,
                          const SamplingParams& params, const TextCallback& on_text = {});

}  // namespace nativelm
