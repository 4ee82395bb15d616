#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace nativelm::server {

namespace {

// Latency buckets in seconds, in the range SGLang's metrics use.
const std::vector<double> kTtftBounds = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
                                         0.75,  1.0,   2.5,  5.0,  7.5,  10,   15,   20,  30,   60};
const std::vector<double> kItlBounds = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03,
                                        0.035,  0.04,  0.05,  0.075, 0.1,  0.15,  0.2,  0.3,   0.4,
                                        0.5,    0.75,  1.0,   2.5};
const std::vector<double> kE2eBounds = {0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 60, 120, 300, 600};

void counter(std::string& out, const std::string& name, const std::string& help, uint64_t value,
             const std::string& labels = "") {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0}{2} {3}\n", name, help, labels, value);
}

void gauge(std::string& out, const std::string& name, const std::string& help, double value) {
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} gauge\n{0} {2}\n", name, help, value);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  std::lock_guard lock(mutex_);
  counts_[bucket]++;
  sum_ += value;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  out += fmt::format("# HELP {0} {1}\n# TYPE {0} histogram\n", name, help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{0}_bucket{{le=\"+Inf\"}} {1}\n{0}_sum {2}\n{0}_count {1}\n", name, count_, sum_);
}

Metrics::Metrics()
    : ttft_(kTtftBounds), itl_(kItlBounds), e2e_(kE2eBounds), queue_(kE2eBounds), prefill_(kTtftBounds),
      decode_(kE2eBounds) {}

void Metrics::request_finished(const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens,
                               int64_t cached_tokens, double e2e_seconds) {
  if (finish_reason == "stop") finished_stop_++;
  else if (finish_reason == "length") finished_length_++;
  else if (finish_reason == "abort") finished_abort_++;
  else finished_other_++;
  prompt_tokens_ += static_cast<uint64_t>(std::max<int64_t>(prompt_tokens, 0));
  generation_tokens_ += static_cast<uint64_t>(std::max<int64_t>(completion_tokens, 0));
  cached_tokens_ += static_cast<uint64_t>(std::max<int64_t>(cached_tokens, 0));
  e2e_.observe(e2e_seconds);
}

std::string Metrics::render(const SchedulerStats& s) const {
  std::string out;
  counter(out, "nativelm:num_requests_total", "Generation requests received (one per choice)",
          requests_started_.load());
  out += "# HELP nativelm:num_finished_requests_total Finished generations by finish reason\n"
         "# TYPE nativelm:num_finished_requests_total counter\n";
  const std::pair<const char*, uint64_t> reasons[] = {{"stop", finished_stop_.load()},
                                                      {"length", finished_length_.load()},
                                                      {"abort", finished_abort_.load()},
                                                      {"error", finished_other_.load()}};
  for (const auto& [reason, n] : reasons)
    out += fmt::format("nativelm:num_finished_requests_total{{finish_reason=\"{}\"}} {}\n", reason, n);
  counter(out, "nativelm:http_errors_total", "HTTP responses with status 400 or above", http_errors_.load());
  counter(out, "nativelm:prompt_tokens_total", "Prompt tokens of finished generations", prompt_tokens_.load());
  counter(out, "nativelm:generation_tokens_total", "Generated tokens", generation_tokens_.load());
  counter(out, "nativelm:cached_tokens_total", "Prompt tokens served from the KV cache", cached_tokens_.load());
  gauge(out, "nativelm:num_running_reqs", "Requests in the running batch", static_cast<double>(s.running));
  gauge(out, "nativelm:num_queue_reqs", "Requests waiting to be scheduled", static_cast<double>(s.waiting));
  gauge(out, "nativelm:max_total_num_tokens", "KV cache capacity in tokens", static_cast<double>(s.max_total_tokens));
  const double usage = s.kv_pages_total > 0
                           ? 1.0 - static_cast<double>(s.kv_pages_free) / static_cast<double>(s.kv_pages_total)
                           : 0.0;
  gauge(out, "nativelm:token_usage", "Fraction of KV cache pages in use", usage);
  gauge(out, "nativelm:kv_pages_free", "Free KV cache pages", static_cast<double>(s.kv_pages_free));
  ttft_.render(out, "nativelm:time_to_first_token_seconds", "Time from request arrival to its first token");
  itl_.render(out, "nativelm:inter_token_latency_seconds", "Time between consecutive output tokens");
  e2e_.render(out, "nativelm:e2e_request_latency_seconds", "Time from request arrival to its last token");
  queue_.render(out, "nativelm:request_queue_time_seconds", "Time a request waited before the scheduler admitted it");
  prefill_.render(out, "nativelm:request_prefill_time_seconds", "Time from admission to the first token");
  decode_.render(out, "nativelm:request_decode_time_seconds", "Time from the first token to the last");
  return out;
}

}  // namespace nativelm::server
