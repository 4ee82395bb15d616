#include "engine/continuation.h"

#include <algorithm>
#include <limits>

namespace nativelm {

Continuation::Continuation(const SamplingParams& params, const Tokenizer& tokenizer,
                           std::span<const int32_t> prompt, std::span<const int32_t> eos_ids,
                           bool skip_special_tokens)
    : params_(params), context_(prompt.begin(), prompt.end()), prompt_len_(prompt.size()),
      stop_ids_(params.stop_token_ids), sampler_(params), stops_(params.stop),
      detok_(tokenizer, skip_special_tokens, prompt) {
  if (!params.ignore_eos) stop_ids_.insert(stop_ids_.end(), eos_ids.begin(), eos_ids.end());
}

void Continuation::mask_early_stop(std::span<float> logits) const {
  if (static_cast<int32_t>(output().size()) >= params_.min_new_tokens) return;
  for (int32_t id : stop_ids_)
    if (id >= 0 && id < static_cast<int32_t>(logits.size())) logits[id] = -std::numeric_limits<float>::infinity();
}

bool Continuation::plain_greedy() const { return params_.greedy() && device_pickable(); }

bool Continuation::device_pickable() const {
  const SamplingParams& p = params_;
  return p.repetition_penalty == 1.0f && p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f &&
         static_cast<int32_t>(output().size()) >= p.min_new_tokens;
}

TokenPick Continuation::next_pick() {
  if (params_.greedy()) return TokenPick{};
  return TokenPick{params_.temperature, params_.top_k, params_.top_p, params_.min_p, sampler_.uniform()};
}

Continuation::Step Continuation::accept(int32_t token) {
  Step step;
  if (std::find(stop_ids_.begin(), stop_ids_.end(), token) != stop_ids_.end()) {
    step.matched_stop_token = token;
    finish(step, "stop");
    return step;
  }
  context_.push_back(token);
  step.text = stops_.feed(detok_.step(token));
  if (stops_.matched()) finish(step, "stop");
  else if (static_cast<int32_t>(output().size()) >= params_.max_new_tokens) finish(step, "length");
  return step;
}

void Continuation::finish(Step& step, std::string reason) {
  if (!stops_.matched()) {
    // A stop string may also complete in the detokenizer's last bytes.
    step.text += stops_.feed(detok_.flush());
    step.text += stops_.flush();
  }
  if (stops_.matched()) {
    reason = "stop";
    step.matched_stop = stops_.matched();
  }
  step.finished = true;
  step.finish_reason = std::move(reason);
}

}  // namespace nativelm
