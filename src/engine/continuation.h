#pragma once
// One request's decoding state, shared by generate() and the Scheduler: the
// tokens so far, the sampler, the streaming detokenizer and the stop rules.
// It picks each next token and decides when and why generation ends.
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "engine/sampling.h"
#include "engine/stop_checker.h"
#include "tokenizer/tokenizer.h"

namespace nativelm {

class Continuation {
 public:
  // eos_ids end generation unless params.ignore_eos; stop_token_ids always do.
  Continuation(const SamplingParams& params, const Tokenizer& tokenizer, std::span<const int32_t> prompt,
               std::span<const int32_t> eos_ids, bool skip_special_tokens);

  const std::vector<int32_t>& context() const { return context_; }  // prompt, then output
  std::span<const int32_t> prompt() const { return std::span(context_).first(prompt_len_); }
  std::span<const int32_t> output() const { return std::span(context_).subspan(prompt_len_); }

  // Forbids the stop tokens while fewer than min_new_tokens were generated.
  void mask_early_stop(std::span<float> logits) const;
  // True when the next token is simply the argmax of the model's logits (greedy,
  // no penalties, no stop tokens masked now): it can be picked on the device.
  bool plain_greedy() const;
  // True when the next pick does not depend on the tokens so far (no
  // penalties, no stop tokens masked now): it can be queued before the
  // previous step's token is known (the overlap scheduler).
  bool device_pickable() const;
  // The next pick, for a backend to make where the logits are
  // (Backend::sample): the sampling parameters and, as logit edits, `bias`
  // (OpenAI's logit_bias), the stop tokens masked before min_new_tokens and
  // the penalties, which the host sampler would apply. Draws from this
  // request's generator when it samples. `pending`: the token picked before
  // is not accepted yet (the overlap scheduler); it counts as output, and
  // the backend adds its penalties (TokenPick::fed).
  TokenPick next_pick(const std::map<int32_t, float>& bias = {}, bool pending = false);
  int32_t sample(std::span<float> logits) { return sampler_.sample(logits, prompt(), output()); }

  struct Step {
    std::string text;  // new text to show
    bool finished = false;
    std::string finish_reason;  // "stop" or "length" once finished
    std::optional<std::string> matched_stop;
    std::optional<int32_t> matched_stop_token;
  };
  // Takes the sampled token: a stop token ends generation without joining
  // the output; otherwise it is appended and its text streamed. The last
  // step also carries the detokenizer's remaining text.
  Step accept(int32_t token);

 private:
  void finish(Step& step, std::string reason);

  SamplingParams params_;
  std::vector<int32_t> context_;
  size_t prompt_len_;
  std::vector<int32_t> stop_ids_;
  Sampler sampler_;
  StopChecker stops_;
  DecodeStream detok_;
};

}  // namespace nativelm
