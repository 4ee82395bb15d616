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
  std::vector<int32_t> next;
  // The next token: the argmax on the device when nothing else shapes the
  // choice, else sampled on the host from the logits.
  auto step = [&]() -> int32_t {
    if (cont.plain_greedy()) {
      runner.step_greedy(seqs, step_tokens, next);
      return next[0];
    }
    if (runner.model().backend().samples_on_device()) {
      const TokenPick pick[] = {cont.next_pick()};
      runner.step_sample(seqs, step_tokens, pick, next);
      return next[0];
    }
    runner.step(seqs, step_tokens, logits);
    cont.mask_early_stop(logits);
    return cont.sample(logits);
  };
  Timer timer;
  int32_t token = step();
  out.prefill_seconds = timer.seconds();
  timer.reset();
  for (;;) {
    auto accepted = cont.accept(token);
    if (!accepted.text.empty()) {
      out.text += accepted.text;
      if (on_text) on_text(accepted.text);
    }
    if (accepted.finished) {
      out.finish_reason = accepted.finish_reason;
      out.matched_stop = accepted.matched_stop;
      out.matched_stop_token = accepted.matched_stop_token;
      break;
    }
    step_tokens[0] = {token};
    token = step();
  }
  out.tokens.assign(cont.output().begin(), cont.output().end());
  out.decode_seconds = timer.seconds();
  return out;
}

}  // namespace nativelm
