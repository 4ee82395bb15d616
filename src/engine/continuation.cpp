#include "engine/continuation.h"

#include <algorithm>
#include <cmath>
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

TokenPick Continuation::next_pick(const std::map<int32_t, float>& bias, bool pending) {
  TokenPick pick;
  if (!params_.greedy())
    pick = TokenPick{params_.temperature, params_.top_k, params_.top_p, params_.min_p, sampler_.uniform(), {}};
  if (pending) {
    pick.repetition_penalty = params_.repetition_penalty;
    pick.frequency_penalty = params_.frequency_penalty;
    pick.presence_penalty = params_.presence_penalty;
  }
  const bool mask = static_cast<int32_t>(output().size()) + (pending ? 1 : 0) < params_.min_new_tokens;
  const bool repeat = params_.repetition_penalty != 1.0f;
  const bool count = params_.frequency_penalty != 0.0f || params_.presence_penalty != 0.0f;
  // One edit per token touched, each holding all the host path would do to
  // it; sorted vectors, not maps (the context may be long, every step).
  std::vector<int32_t> tokens;
  for (const auto& kv : bias) tokens.push_back(kv.first);
  if (mask) tokens.insert(tokens.end(), stop_ids_.begin(), stop_ids_.end());
  if (repeat) tokens.insert(tokens.end(), context_.begin(), context_.end());
  std::vector<int32_t> out;
  if (count) out.assign(output().begin(), output().end());
  std::sort(out.begin(), out.end());
  tokens.insert(tokens.end(), out.begin(), out.end());
  std::sort(tokens.begin(), tokens.end());
  tokens.erase(std::unique(tokens.begin(), tokens.end()), tokens.end());
  std::vector<LogitEdit>& edits = pick.edits;
  edits.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) edits[i].token = tokens[i];
  const auto at = [&](int32_t token) -> LogitEdit& {
    return edits[std::lower_bound(tokens.begin(), tokens.end(), token) - tokens.begin()];
  };
  for (auto [token, b] : bias) at(token).bias = b;
  if (mask)
    for (int32_t id : stop_ids_) at(id).mask = true;
  if (repeat)
    for (int32_t t : context_) at(t).repetition = params_.repetition_penalty;
  for (size_t i = 0; i < out.size();) {
    size_t j = i;
    while (j < out.size() && out[j] == out[i]) ++j;
    LogitEdit& e = at(out[i]);
    e.count = static_cast<int32_t>(j - i);
    e.subtract = std::fma(params_.frequency_penalty, static_cast<float>(e.count), params_.presence_penalty);
    i = j;
  }
  return pick;
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
