// nativelm bench_one_batch: the latency of one static batch (prefill, then
// decode steps), printed in SGLang's exact format so numbers compare directly.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <random>

#include "cli/commands.h"
#include "cli/model_options.h"
#include "engine/kv_pool.h"
#include "engine/model_runner.h"
#include "engine/sampling.h"
#include "util/error.h"
#include "util/timer.h"

namespace nativelm::cli {

namespace {

struct BenchOptions {
  ModelOptions model;
  std::vector<int> batch_sizes{1};
  std::vector<int> input_lens{1024};
  std::vector<int> output_lens{16};
  std::string result_filename;
  std::string run_name = "default";
  uint64_t seed = 42;
};

nlohmann::json run_once(const std::string& run_name, LoadedModel& m, int bs, int in_len, int out_len,
                        uint64_t seed, bool print) {
  auto say = [&](const std::string& line) { if (print) fmt::print("{}\n", line); };
  KvPoolShape shape{m.config.num_layers, m.config.kv_dim(), m.model->kv_dtype(), 16, 0};
  // One page more: a backend that replays decode steps pads them there.
  shape.num_pages = bs * ((in_len + out_len + shape.page_size - 1) / shape.page_size) + 1;
  KvPool pool(*m.backend, shape);
  ModelRunner runner(*m.model, pool);
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(std::min<int64_t>(10000, m.config.vocab_size) - 1));  // as SGLang
  std::vector<SeqKv> seqs(bs);
  std::vector<SeqKv*> ptrs;
  std::vector<std::vector<int32_t>> inputs(bs, std::vector<int32_t>(in_len));
  for (int b = 0; b < bs; ++b) {
    ptrs.push_back(&seqs[b]);
    for (auto& t : inputs[b]) t = token(rng);
  }
  nlohmann::json r = {{"run_name", run_name}, {"batch_size", bs}, {"input_len", in_len}, {"output_len", out_len}};
  // As SGLang's bench_one_batch: greedy, the argmax taken on the device.
  std::vector<int32_t> next;
  Timer timer;
  runner.step_greedy(ptrs, inputs, next);
  m.backend->synchronize();
  const double prefill = timer.seconds();
  double total = prefill;
  say(fmt::format("Prefill. latency: {:6.5f} s, throughput: {:9.2f} token/s", prefill, double(in_len) * bs / prefill));
  r["prefill_latency"] = prefill;
  r["prefill_throughput"] = double(in_len) * bs / prefill;
  std::vector<double> latencies;
  for (int i = 0; i < out_len - 1; ++i) {
    std::vector<std::vector<int32_t>> tokens;
    for (int32_t t : next) tokens.push_back({t});
    timer.reset();
    runner.step_greedy(ptrs, tokens, next);
    m.backend->synchronize();
    const double lat = timer.seconds();
    total += lat;
    latencies.push_back(lat);
    if (i < 5)
      say(fmt::format("Decode {}. Batch size: {}, latency: {:6.5f} s, throughput: {:9.2f} token/s", i, bs, lat, bs / lat));
  }
  if (out_len > 1) {
    std::sort(latencies.begin(), latencies.end());
    const size_t n = latencies.size();
    const double median = n % 2 ? latencies[n / 2] : (latencies[n / 2 - 1] + latencies[n / 2]) / 2;
    say(fmt::format("Decode.  median latency: {:6.5f} s, median throughput: {:9.2f} token/s", median, bs / median));
    r["median_decode_latency"] = median;
    r["median_decode_throughput"] = bs / median;
  }
  const double overall = double(in_len + out_len) * bs / total;
  say(fmt::format("Total. latency: {:6.3f} s, throughput: {:9.2f} token/s", total, overall));
  r["total_latency"] = total;
  r["overall_throughput"] = overall;
  for (auto& s : seqs) runner.release(s);
  return r;
}

void run(const BenchOptions& o) {
  auto m = o.model.load();
  fmt::print("Warmup ...\n");
  run_once("warmup", *m, o.batch_sizes[0], o.input_lens[0], std::min(o.output_lens[0], 4), o.seed, true);
  fmt::print("Benchmark ...\n");
  std::vector<nlohmann::json> results;
  for (int bs : o.batch_sizes)
    for (int in : o.input_lens)
      for (int out : o.output_lens) {
        if (in + out > m->config.max_position_embeddings) {
          fmt::print("skipping ({}, {}, {}): longer than the model's context\n", bs, in, out);
          continue;
        }
        results.push_back(run_once(o.run_name, *m, bs, in, out, o.seed, true));
      }
  if (!o.result_filename.empty()) {
    std::ofstream f(o.result_filename, std::ios::app);
    if (!f) fail("cannot open --result-filename {}", o.result_filename);
    for (const auto& r : results) f << r.dump() << "\n";
  }
}

}  // namespace

void register_bench_one_batch(CLI::App& app) {
  auto opts = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench_one_batch", "Latency of one static batch (SGLang's bench_one_batch)");
  opts->model.add_to(*cmd);
  cmd->add_option("--batch-size", opts->batch_sizes, "Batch sizes")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--input-len", opts->input_lens, "Input lengths")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--output-len", opts->output_lens, "Output lengths")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--result-filename", opts->result_filename, "Append a JSONL record per run here");
  cmd->add_option("--run-name", opts->run_name, "run_name field of the JSONL records")->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Seed of the random input ids")->capture_default_str();
  cmd->callback([opts] { run(*opts); });
}

}  // namespace nativelm::cli
