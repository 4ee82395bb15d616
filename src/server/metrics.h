#pragma once
// Server-side counters and latency histograms, rendered as Prometheus text
// for GET /metrics together with the scheduler's own gauges.
#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "engine/scheduler.h"

namespace nativelm::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // Appends the _bucket / _sum / _count lines of a Prometheus histogram.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  void request_started() { requests_started_++; }
  // One finished generation (one choice), by finish reason.
  void request_finished(const std::string& finish_reason, int64_t prompt_tokens, int64_t completion_tokens,
                        int64_t cached_tokens, double e2e_seconds);
  void http_error() { http_errors_++; }
  void time_to_first_token(double seconds) { ttft_.observe(seconds); }
  void inter_token_latency(double seconds) { itl_.observe(seconds); }
  // The scheduler's timeline of one finished request.
  void timeline(double queue, double prefill, double decode) {
    queue_.observe(queue);
    prefill_.observe(prefill);
    decode_.observe(decode);
  }

  std::string render(const SchedulerStats& stats) const;

 private:
  std::atomic<uint64_t> requests_started_{0}, http_errors_{0};
  std::atomic<uint64_t> finished_stop_{0}, finished_length_{0}, finished_abort_{0}, finished_other_{0};
  std::atomic<uint64_t> prompt_tokens_{0}, generation_tokens_{0}, cached_tokens_{0};
  Histogram ttft_, itl_, e2e_, queue_, prefill_, decode_;
};

}  // namespace nativelm::server
