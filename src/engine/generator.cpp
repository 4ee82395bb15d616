#include "engine/generator.h"

#include <algorithm>
#include <limits>

#include "engine/stop_checker.h"
#include "util/error.h"
#include "util/timer.h"

namespace nativelm {

namespace {

// Releases the request's KV pages however generation ends.
struct SeqGuard {
  ModelRunner& runner;
  SeqKv seq;
  ~SeqGuard() { runner.release(seq); }
};

}  // namespace

GenerationOutput generate(LoadedModel& m, ModelRunner& runner, std::span<const int32_t> prompt,
                          const SamplingParams& params, const TextCallback& on_text) {
  params.validate();
  if (prompt.empty()) fail("the prompt is empty");
  GenerationOutput out;
  out.prompt_tokens = static_cast<int64_t>(prompt.size());
  out.finish_reason = "length";
  if (params.max_new_tokens == 0) return out;

  std::vector<int32_t> stop_ids = params.stop_token_ids;
  if (!params.ignore_eos) for (int32_t id : m.eos_token_ids()) stop_ids.push_back(id);
  Sampler sampler(params);
  StopChecker stops(params.stop);
  DecodeStream detok(*m.tokenizer, /*skip_special_tokens=*/true, prompt);
  auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    out.text += text;
    if (on_text) on_text(text);
  };

  SeqGuard guard{runner, {}};
  SeqKv* seqs[] = {&guard.seq};
  std::vector<std::vector<int32_t>> step_tokens = {std::vector<int32_t>(prompt.begin(), prompt.end())};
  std::vector<float> logits;
  Timer timer;
  runner.step(seqs, step_tokens, logits);
  out.prefill_seconds = timer.seconds();
  timer.reset();
  for (;;) {
    if (static_cast<int32_t>(out.tokens.size()) < params.min_new_tokens)
      for (int32_t id : stop_ids)
        if (id >= 0 && id < static_cast<int32_t>(logits.size())) logits[id] = -std::numeric_limits<float>::infinity();
    const int32_t token = sampler.sample(logits, prompt, out.tokens);
    if (std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end()) {
      out.finish_reason = "stop";
      out.matched_stop_token = token;
      break;
    }
    out.tokens.push_back(token);
    emit(stops.feed(detok.step(token)));
    if (stops.matched()) {
      out.finish_reason = "stop";
      out.matched_stop = stops.matched();
      break;
    }
    if (static_cast<int32_t>(out.tokens.size()) >= params.max_new_tokens) break;
    step_tokens[0] = {token};
    runner.step(seqs, step_tokens, logits);
  }
  if (!out.matched_stop) {
    std::string tail = stops.feed(detok.flush());
    if (stops.matched()) {
      out.finish_reason = "stop";
      out.matched_stop = stops.matched();
    }
    emit(tail + stops.flush());
  }
  out.decode_seconds = timer.seconds();
  return out;
}

}  // namespace nativelm
