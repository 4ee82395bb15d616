// nativelm bench_offline_throughput: many requests through the continuous-
// batching scheduler at once, no HTTP, reported as SGLang reports it.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/scheduler_options.h"
#include "engine/scheduler.h"
#include "io/json_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/timer.h"

namespace nativelm::cli {

namespace {

struct OfflineOptions {
  ModelOptions model;
  SchedulerOptions scheduler;
  int num_prompts = 1000;
  std::string dataset_name = "random";
  std::string dataset_path;
  int random_input_len = 1024;
  int random_output_len = 1024;
  double random_range_ratio = 0.0;
  uint64_t seed = 1;
  std::string result_filename;
};

struct Prompt {
  std::vector<int32_t> ids;
  int32_t output_len = 0;
};

// Random token ids with lengths drawn from [len * ratio, len], as SGLang's
// random dataset does.
std::vector<Prompt> random_prompts(const OfflineOptions& o, int64_t vocab) {
  std::mt19937_64 rng(o.seed);
  auto length = [&](int len) {
    std::uniform_int_distribution<int> d(std::max(1, static_cast<int>(len * o.random_range_ratio)), len);
    return d(rng);
  };
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<Prompt> prompts(o.num_prompts);
  for (auto& p : prompts) {
    p.ids.resize(length(o.random_input_len));
    for (auto& t : p.ids) t = token(rng);
    p.output_len = length(o.random_output_len);
  }
  return prompts;
}

// ShareGPT-format conversations: the first turn is the prompt, the length of
// the reply (in tokens) is the output length.
std::vector<Prompt> sharegpt_prompts(const OfflineOptions& o, const Tokenizer& tok) {
  const auto data = io::read_json_file(o.dataset_path);
  std::vector<Prompt> prompts;
  for (const auto& item : data) {
    if (static_cast<int>(prompts.size()) >= o.num_prompts) break;
    if (!item.contains("conversations") || item["conversations"].size() < 2) continue;
    const auto& turns = item["conversations"];
    Prompt p;
    p.ids = tok.encode(turns[0].value("value", ""), true);
    p.output_len = static_cast<int32_t>(tok.encode(turns[1].value("value", ""), false).size());
    if (p.ids.size() < 4 || p.output_len < 4 || p.ids.size() > 1024 || p.ids.size() + p.output_len > 2048) continue;
    prompts.push_back(std::move(p));
  }
  if (prompts.empty()) fail("{} has no usable ShareGPT conversations", o.dataset_path);
  return prompts;
}

void print_result(const std::string& backend, size_t requests, double duration, int64_t input, int64_t output) {
  fmt::print("\n{:=^50}\n", " Offline Throughput Benchmark Result ");
  fmt::print("{:<40} {:<10}\n", "Backend:", backend);
  fmt::print("{:<40} {:<10}\n", "Successful requests:", requests);
  fmt::print("{:<40} {:<10.2f}\n", "Benchmark duration (s):", duration);
  fmt::print("{:<40} {:<10}\n", "Total input tokens:", input);
  fmt::print("{:<40} {:<10}\n", "Total generated tokens:", output);
  fmt::print("{:<40} {:<10.2f}\n", "Request throughput (req/s):", requests / duration);
  fmt::print("{:<40} {:<10.2f}\n", "Input token throughput (tok/s):", input / duration);
  fmt::print("{:<40} {:<10.2f}\n", "Output token throughput (tok/s):", output / duration);
  fmt::print("{:<40} {:<10.2f}\n", "Total token throughput (tok/s):", (input + output) / duration);
  fmt::print("{}\n", std::string(50, '='));
}

void run(const OfflineOptions& o) {
  auto m = o.model.load();
  const int64_t vocab = std::min<int64_t>(m->config.vocab_size, m->tokenizer->vocab_size());
  const auto prompts = o.dataset_name == "random" ? random_prompts(o, vocab)
                       : o.dataset_name == "sharegpt"
                           ? sharegpt_prompts(o, *m->tokenizer)
                           : (fail("unknown --dataset-name '{}' (random or sharegpt)", o.dataset_name), std::vector<Prompt>{});
  Scheduler scheduler(*m, o.scheduler);
  Timer timer;
  std::vector<std::shared_ptr<RequestStream>> streams;
  int64_t input_tokens = 0;
  for (const auto& p : prompts) {
    RequestInput in;
    in.prompt = p.ids;
    in.params.temperature = 0;
    in.params.max_new_tokens = p.output_len;
    in.params.ignore_eos = true;
    input_tokens += static_cast<int64_t>(p.ids.size());
    streams.push_back(scheduler.submit(std::move(in)));
  }
  int64_t output_tokens = 0;
  size_t ok = 0;
  for (auto& s : streams) {
    RequestUpdate u;
    while (s->wait(u)) {
      output_tokens += static_cast<int64_t>(u.tokens.size());
      if (u.finished && u.error.empty() && u.finish_reason != "abort") ++ok;
    }
  }
  const double duration = timer.seconds();
  print_result("engine", ok, duration, input_tokens, output_tokens);
  if (!o.result_filename.empty()) {
    std::ofstream f(o.result_filename, std::ios::app);
    if (!f) fail("cannot open --result-filename {}", o.result_filename);
    f << nlohmann::json{{"backend", "engine"}, {"successful_requests", ok}, {"total_latency", duration},
                        {"total_input_tokens", input_tokens}, {"total_output_tokens", output_tokens},
                        {"request_throughput", ok / duration}, {"input_throughput", input_tokens / duration},
                        {"output_throughput", output_tokens / duration},
                        {"total_throughput", (input_tokens + output_tokens) / duration}}
             .dump()
      << "\n";
  }
}

}  // namespace

void register_bench_offline_throughput(CLI::App& app) {
  auto o = std::make_shared<OfflineOptions>();
  auto* cmd = app.add_subcommand("bench_offline_throughput", "Offline batch throughput through the scheduler (SGLang's)");
  o->model.add_to(*cmd);
  add_scheduler_options(*cmd, o->scheduler);
  cmd->add_option("--num-prompts", o->num_prompts, "Requests to run")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--dataset-name", o->dataset_name, "random or sharegpt")->capture_default_str();
  cmd->add_option("--dataset-path", o->dataset_path, "ShareGPT JSON file (with --dataset-name sharegpt)");
  cmd->add_option("--random-input-len", o->random_input_len, "Input length (random dataset)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--random-output-len", o->random_output_len, "Output length (random dataset)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--random-range-ratio", o->random_range_ratio, "Lengths are drawn from [len * ratio, len]")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->seed, "Dataset seed")->capture_default_str();
  cmd->add_option("--result-filename", o->result_filename, "Append a JSONL record here");
  cmd->callback([o] { run(*o); });
}

}  // namespace nativelm::cli
