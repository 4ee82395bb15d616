// nativelm generate: one prompt, streamed to stdout, timing on stderr.
#include <fmt/format.h>

#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "engine/generator.h"
#include "engine/kv_pool.h"
#include "util/error.h"

namespace nativelm::cli {

namespace {

struct GenerateOptions {
  ModelOptions model;
  std::string prompt;
  int32_t max_new_tokens = 128;
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int32_t> top_k;
  float frequency_penalty = 0, presence_penalty = 0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};

SamplingParams sampling_params(const LoadedModel& m, const GenerateOptions& o) {
  SamplingParams p = m.defaults.base_params();
  if (o.temperature) p.temperature = *o.temperature;
  if (o.top_p) p.top_p = *o.top_p;
  if (o.top_k) p.top_k = *o.top_k;
  if (o.min_p) p.min_p = *o.min_p;
  if (o.repetition_penalty) p.repetition_penalty = *o.repetition_penalty;
  p.frequency_penalty = o.frequency_penalty;
  p.presence_penalty = o.presence_penalty;
  p.seed = o.seed;
  p.max_new_tokens = o.max_new_tokens;
  p.stop = o.stop;
  p.ignore_eos = o.ignore_eos;
  return p;
}

void run(const GenerateOptions& o) {
  auto m = o.model.load();
  const auto prompt = m->tokenizer->encode(o.prompt, /*add_special_tokens=*/true);
  const SamplingParams params = sampling_params(*m, o);
  params.validate();
  const int64_t total = static_cast<int64_t>(prompt.size()) + params.max_new_tokens;
  if (total > m->config.max_position_embeddings)
    fail("prompt ({} tokens) + --max-new-tokens ({}) exceeds the model's context length {}",
         prompt.size(), params.max_new_tokens, m->config.max_position_embeddings);
  KvPoolShape shape{m->config.num_layers, m->config.kv_dim(), m->model->kv_dtype(), 16, 0};
  shape.num_pages = static_cast<int32_t>((total + shape.page_size - 1) / shape.page_size) + 1;  // + a padding page (ModelRunner)
  KvPool pool(*m->backend, shape);
  ModelRunner runner(*m->model, pool);
  auto out = generate(*m, runner, prompt, params, [](std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const double decode_tps = out.tokens.size() > 1 ? (out.tokens.size() - 1) / out.decode_seconds : 0.0;
  fmt::print(stderr,
             "prompt: {} tokens, prefill {:.3f} s ({:.2f} tok/s); generated: {} tokens, decode "
             "{:.2f} tok/s; finish: {}\n",
             out.prompt_tokens, out.prefill_seconds, out.prompt_tokens / out.prefill_seconds,
             out.tokens.size(), decode_tps, out.finish_reason);
}

}  // namespace

void register_generate(CLI::App& app) {
  auto opts = std::make_shared<GenerateOptions>();
  auto* cmd = app.add_subcommand("generate", "Generate text for one prompt, streamed to stdout");
  opts->model.add_to(*cmd);
  cmd->add_option("--prompt", opts->prompt, "Prompt text")->required();
  cmd->add_option("--max-new-tokens", opts->max_new_tokens, "Tokens to generate at most")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--temperature", opts->temperature, "Sampling temperature (0: greedy)");
  cmd->add_option("--top-p", opts->top_p, "Nucleus sampling probability mass");
  cmd->add_option("--top-k", opts->top_k, "Sample among the k most likely tokens");
  cmd->add_option("--min-p", opts->min_p, "Drop tokens below min_p times the top probability");
  cmd->add_option("--repetition-penalty", opts->repetition_penalty, "HF-style repetition penalty");
  cmd->add_option("--frequency-penalty", opts->frequency_penalty, "OpenAI-style frequency penalty");
  cmd->add_option("--presence-penalty", opts->presence_penalty, "OpenAI-style presence penalty");
  cmd->add_option("--seed", opts->seed, "Random seed for reproducible sampling");
  cmd->add_option("--stop", opts->stop, "Stop string (repeatable)");
  cmd->add_flag("--ignore-eos", opts->ignore_eos, "Keep generating past EOS");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace nativelm::cli
