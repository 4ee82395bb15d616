// nativelm bench_serving: drives any OpenAI-compatible server (nativelm,
// SGLang, vLLM, llama.cpp) with streamed /v1/completions requests and prints
// SGLang's serving benchmark table (TTFT, TPOT, ITL, throughput).
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <map>
#include <thread>

#include "cli/commands.h"
#include "io/model_path.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/timer.h"

namespace nativelm::cli {

namespace {

using nlohmann::json;

struct BenchOptions {
  std::string base_url = "http://127.0.0.1:30000";
  std::string model, tokenizer, api_key;
  int num_prompts = 100;
  double request_rate = INFINITY;
  int max_concurrency = 0;  // 0: unlimited
  std::string dataset_name = "random", dataset_path;
  int random_input_len = 1024, random_output_len = 128;
  double random_range_ratio = 0.0;
  uint64_t seed = 1;
  bool disable_ignore_eos = false, disable_progress = false;
  std::string extra_request_body;  // JSON object merged into every request
  json extra = json::object();     // ...parsed
};

struct BenchRequest {
  std::string prompt;
  int64_t input_len = 0, output_len = 0;
};

struct BenchResult {
  bool ok = false;
  std::string error;
  double ttft = 0, latency = 0;
  std::vector<double> itl;
  int64_t output_tokens = 0;
};

int64_t sized(int64_t full, double ratio, std::mt19937_64& rng) {
  const auto lo = std::max<int64_t>(1, static_cast<int64_t>(std::floor(full * ratio)));
  return std::uniform_int_distribution<int64_t>(std::min(lo, full), std::max<int64_t>(full, 1))(rng);
}

// SGLang's random dataset: random non-special token ids, decoded to text.
std::vector<BenchRequest> random_requests(const BenchOptions& o, const Tokenizer& tok) {
  std::mt19937_64 rng(o.seed);
  std::vector<BenchRequest> out;
  std::uniform_int_distribution<int32_t> pick(0, tok.vocab_size() - 1);
  for (int i = 0; i < o.num_prompts; ++i) {
    std::vector<int32_t> ids;
    const int64_t len = sized(o.random_input_len, o.random_range_ratio, rng);
    while (static_cast<int64_t>(ids.size()) < len) {
      const int32_t id = pick(rng);
      if (!tok.is_special(id)) ids.push_back(id);
    }
    BenchRequest r{tok.decode(ids, true), 0, sized(o.random_output_len, o.random_range_ratio, rng)};
    r.input_len = static_cast<int64_t>(tok.encode(r.prompt, false).size());
    out.push_back(std::move(r));
  }
  return out;
}

// ShareGPT: the first human turn is the prompt, the first reply's length the output length.
std::vector<BenchRequest> sharegpt_requests(const BenchOptions& o, const Tokenizer& tok) {
  std::ifstream in(o.dataset_path);
  if (!in) fail("cannot read --dataset-path '{}'", o.dataset_path);
  json data;
  try {
    data = json::parse(in);
  } catch (const json::exception& e) {
    fail("--dataset-path '{}' is not valid JSON: {}", o.dataset_path, e.what());
  }
  std::vector<BenchRequest> out;
  for (const auto& item : data) {
    if (static_cast<int>(out.size()) >= o.num_prompts) break;
    const auto& conv = item.value("conversations", json::array());
    if (conv.size() < 2 || !conv[0].contains("value") || !conv[1].contains("value")) continue;
    BenchRequest r{conv[0]["value"].get<std::string>(), 0, 0};
    r.input_len = static_cast<int64_t>(tok.encode(r.prompt, false).size());
    r.output_len = static_cast<int64_t>(tok.encode(conv[1]["value"].get<std::string>(), false).size());
    // SGLang's filter: skip tiny and very long conversations.
    if (r.input_len < 4 || r.output_len < 4 || r.input_len > 1024 || r.input_len + r.output_len > 2048) continue;
    out.push_back(std::move(r));
  }
  if (out.empty()) fail("--dataset-path '{}' has no usable ShareGPT conversations", o.dataset_path);
  return out;
}

// Reads SSE events from a streamed completion, timing every text chunk.
class StreamTimer {
 public:
  explicit StreamTimer(BenchResult& result) : r_(result) {}
  double elapsed() const { return clock_.seconds(); }
  int64_t text_chunks() const { return chunks_; }
  void feed(const char* data, size_t len) {
    buffer_.append(data, len);
    for (size_t end; (end = buffer_.find("\n\n")) != std::string::npos; buffer_.erase(0, end + 2))
      event(buffer_.substr(0, end));
  }

 private:
  void event(const std::string& e) {
    if (e.rfind("data: ", 0) != 0 || e == "data: [DONE]") return;
    const json j = json::parse(e.substr(6), nullptr, false);
    if (j.is_discarded()) return;
    if (j.contains("error")) r_.error = j["error"].dump();
    if (j.contains("usage") && j["usage"].is_object()) r_.output_tokens = j["usage"].value("completion_tokens", 0);
    if (!j.contains("choices") || j["choices"].empty()) return;
    const auto& text = j["choices"][0]["text"];
    if (!text.is_string() || text.get<std::string>().empty()) return;
    const double now = clock_.seconds();
    if (r_.ttft == 0) r_.ttft = now;
    else r_.itl.push_back(now - last_);
    last_ = now;
    chunks_++;
  }

  Timer clock_;
  double last_ = 0;
  int64_t chunks_ = 0;
  BenchResult& r_;
  std::string buffer_;
};

BenchResult send_one(const BenchOptions& o, const std::string& model, const BenchRequest& req) {
  BenchResult r;
  httplib::Client client(o.base_url);
  client.set_read_timeout(600, 0);
  json body = {{"model", model},         {"prompt", req.prompt}, {"max_tokens", req.output_len},
               {"temperature", 0.0},     {"stream", true},       {"stream_options", {{"include_usage", true}}},
               {"ignore_eos", !o.disable_ignore_eos}};
  body.update(o.extra);
  httplib::Request http;
  http.method = "POST";
  http.path = "/v1/completions";
  http.body = body.dump();
  http.set_header("Content-Type", "application/json");
  if (!o.api_key.empty()) http.set_header("Authorization", "Bearer " + o.api_key);
  StreamTimer timer(r);
  http.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    timer.feed(data, len);
    return true;
  };
  auto result = client.send(http);
  r.latency = timer.elapsed();
  if (!result) r.error = "connection failed: " + httplib::to_string(result.error());
  else if (result->status != 200) r.error = fmt::format("HTTP {}: {}", result->status, result->body.substr(0, 300));
  if (r.output_tokens == 0) r.output_tokens = timer.text_chunks();
  r.ok = r.error.empty() && r.ttft > 0;
  return r;
}

std::string served_model(const BenchOptions& o) {
  if (!o.model.empty()) return o.model;
  httplib::Client client(o.base_url);
  httplib::Headers headers;
  if (!o.api_key.empty()) headers.emplace("Authorization", "Bearer " + o.api_key);
  auto res = client.Get("/v1/models", headers);
  if (!res || res->status != 200) fail("cannot list models at {}/v1/models; pass --model", o.base_url);
  const json j = json::parse(res->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || j["data"].empty()) fail("{}/v1/models lists no model", o.base_url);
  return j["data"][0]["id"].get<std::string>();
}

void progress(int done, int total) {
  const int width = 40, filled = total ? done * width / total : width;
  fmt::print(stderr, "\r[{}{}] {}/{}", std::string(filled, '#'), std::string(width - filled, '.'), done, total);
  if (done == total) fmt::print(stderr, "\n");
}

// Runs every request: arrivals follow a Poisson process of rate --request-rate,
// and at most --max-concurrency are in flight.
std::vector<BenchResult> run_all(const BenchOptions& o, const std::string& model,
                                 const std::vector<BenchRequest>& reqs) {
  std::vector<double> arrival(reqs.size(), 0.0);
  std::mt19937_64 rng(o.seed);
  std::exponential_distribution<double> gap(std::isinf(o.request_rate) ? 1.0 : o.request_rate);
  for (size_t i = 1; i < reqs.size(); ++i) arrival[i] = arrival[i - 1] + (std::isinf(o.request_rate) ? 0 : gap(rng));
  std::vector<BenchResult> results(reqs.size());
  std::atomic<size_t> next{0};
  std::atomic<int> done{0};
  std::mutex print_mutex;
  Timer clock;
  const size_t workers = std::min<size_t>(reqs.size(), o.max_concurrency > 0 ? o.max_concurrency : 512);
  std::vector<std::thread> threads;
  for (size_t w = 0; w < workers; ++w)
    threads.emplace_back([&] {
      for (size_t i; (i = next++) < reqs.size();) {
        const double wait = arrival[i] - clock.seconds();
        if (wait > 0) std::this_thread::sleep_for(std::chrono::duration<double>(wait));
        results[i] = send_one(o, model, reqs[i]);
        std::lock_guard lock(print_mutex);
        if (!o.disable_progress) progress(++done, static_cast<int>(reqs.size()));
      }
    });
  for (auto& t : threads) t.join();
  return results;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

void print_latency(const char* title, const char* name, const std::vector<double>& seconds) {
  std::vector<double> ms;
  for (double s : seconds) ms.push_back(s * 1000);
  fmt::print("{:-^50}\n", title);
  fmt::print("{:<40} {:<10.2f}\n", fmt::format("Mean {} (ms):", name), mean(ms));
  fmt::print("{:<40} {:<10.2f}\n", fmt::format("Median {} (ms):", name), percentile(ms, 50));
  fmt::print("{:<40} {:<10.2f}\n", fmt::format("P99 {} (ms):", name), percentile(ms, 99));
}

void report(const BenchOptions& o, const std::vector<BenchRequest>& reqs, const std::vector<BenchResult>& results,
            double duration) {
  int64_t ok = 0, input = 0, output = 0;
  std::vector<double> ttft, tpot, itl, e2e;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    if (!r.ok) continue;
    ok++;
    input += reqs[i].input_len;
    output += r.output_tokens;
    ttft.push_back(r.ttft);
    e2e.push_back(r.latency);
    if (r.output_tokens > 1) tpot.push_back((r.latency - r.ttft) / static_cast<double>(r.output_tokens - 1));
    itl.insert(itl.end(), r.itl.begin(), r.itl.end());
  }
  auto row = [](const std::string& k, const std::string& v) { fmt::print("{:<40} {:<10}\n", k, v); };
  fmt::print("\n{:=^50}\n", " Serving Benchmark Result ");
  row("Backend:", "openai");
  row("Traffic request rate:", std::isinf(o.request_rate) ? "inf" : fmt::format("{}", o.request_rate));
  row("Max request concurrency:", o.max_concurrency > 0 ? std::to_string(o.max_concurrency) : "not set");
  row("Successful requests:", std::to_string(ok));
  row("Benchmark duration (s):", fmt::format("{:.2f}", duration));
  row("Total input tokens:", std::to_string(input));
  row("Total generated tokens:", std::to_string(output));
  row("Request throughput (req/s):", fmt::format("{:.2f}", ok / duration));
  row("Input token throughput (tok/s):", fmt::format("{:.2f}", input / duration));
  row("Output token throughput (tok/s):", fmt::format("{:.2f}", output / duration));
  row("Total token throughput (tok/s):", fmt::format("{:.2f}", (input + output) / duration));
  print_latency("End-to-End Latency", "E2E Latency", e2e);
  print_latency("Time to First Token", "TTFT", ttft);
  print_latency("Time per Output Token (excl. 1st token)", "TPOT", tpot);
  print_latency("Inter-Token Latency", "ITL", itl);
  fmt::print("{:=^50}\n", "");
}

void run(BenchOptions& o) {
  if (!o.extra_request_body.empty()) {
    o.extra = json::parse(o.extra_request_body, nullptr, /*allow_exceptions=*/false);
    if (!o.extra.is_object())
      fail("--extra-request-body must be a JSON object, e.g. '{{\"temperature\": 0.6}}', got: {}",
           o.extra_request_body);
  }
  if (o.tokenizer.empty()) fail("--tokenizer (a model folder or cached repo id) is needed to build and count prompts");
  const Tokenizer tok = Tokenizer::from_file(io::resolve_model_path(o.tokenizer) / "tokenizer.json");
  const auto reqs = o.dataset_name == "sharegpt" || !o.dataset_path.empty() ? sharegpt_requests(o, tok)
                                                                           : random_requests(o, tok);
  const std::string model = served_model(o);
  Timer clock;
  const auto results = run_all(o, model, reqs);
  const double duration = clock.seconds();
  std::map<std::string, int> failures;  // why requests failed, and how often
  for (const auto& r : results)
    if (!r.ok) ++failures[r.error.empty() ? "no tokens received" : r.error];
  for (const auto& [why, n] : failures) fmt::print(stderr, "{} request(s) failed: {}\n", n, why);
  report(o, reqs, results, duration);
}

}  // namespace

void register_bench_serving(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench_serving", "Benchmark an OpenAI-compatible server (TTFT, TPOT, ITL)");
  cmd->add_option("--base-url", o->base_url, "Server URL")->capture_default_str();
  cmd->add_option("--model", o->model, "Model name to request (default: the first of /v1/models)");
  cmd->add_option("--tokenizer", o->tokenizer, "Model folder or repo id whose tokenizer builds the prompts")
      ->required();
  cmd->add_option("--api-key", o->api_key, "Bearer key for the server");
  cmd->add_option("--num-prompts", o->num_prompts, "Requests to send")->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--request-rate", o->request_rate, "Requests per second (Poisson arrivals; inf: all at once)")
      ->capture_default_str()
      ->check([](const std::string& value) {  // CLI::PositiveNumber rejects inf
        try {
          return std::stod(value) > 0 ? std::string() : std::string("--request-rate must be positive or inf");
        } catch (const std::exception&) {
          return std::string("--request-rate must be a number or inf");
        }
      });
  cmd->add_option("--max-concurrency", o->max_concurrency, "Requests in flight at most (0: unlimited)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--dataset-name", o->dataset_name, "random or sharegpt")->capture_default_str()
      ->check(CLI::IsMember({"random", "sharegpt"}));
  cmd->add_option("--dataset-path", o->dataset_path, "ShareGPT JSON file");
  cmd->add_option("--random-input-len", o->random_input_len, "Prompt tokens (random dataset)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--random-output-len", o->random_output_len, "Output tokens (random dataset)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--random-range-ratio", o->random_range_ratio, "Lengths vary in [ratio * len, len]")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--seed", o->seed, "Seed for prompts and arrivals")->capture_default_str();
  cmd->add_flag("--disable-ignore-eos", o->disable_ignore_eos, "Let requests stop at EOS");
  cmd->add_flag("--disable-tqdm", o->disable_progress, "No progress bar");
  cmd->add_option("--extra-request-body", o->extra_request_body,
                  "JSON object merged into every request body (e.g. sampling parameters)");
  cmd->callback([o] { run(*o); });
}

}  // namespace nativelm::cli
