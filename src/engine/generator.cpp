#include "engine/generator.h"

#include "engine/continuation.h"
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

  Continuation cont(params, *m.tokenizer, prompt, m.eos_token_ids(), /*skip_special_tokens=*/true);
  SeqGuard guard{runner, {}};
  SeqKv* seqs[] = {&guard.seq};
  std::vector<std::vector<int32_t>> step_tokens = {std::vector<int32_t>(prompt.begin(), prompt.end())};
  std::vector<float> logits;
  Timer timer;
  runner.step(seqs, step_tokens, logits);
  out.prefill_seconds = timer.seconds();
  timer.reset();
  for (;;) {
    cont.mask_early_stop(logits);
    const int32_t token = cont.sample(logits);
    auto step = cont.accept(token);
    if (!step.text.empty()) {
      out.text += step.text;
      if (on_text) on_text(step.text);
    }
    if (step.finished) {
      out.finish_reason = step.finish_reason;
      out.matched_stop = step.matched_stop;
      out.matched_stop_token = step.matched_stop_token;
      break;
    }
    step_tokens[0] = {token};
    runner.step(seqs, step_tokens, logits);
  }
  out.tokens.assign(cont.output().begin(), cont.output().end());
  out.decode_seconds = timer.seconds();
  return out;
}

}  // namespace nativelm
