#pragma once
// The continuous-batching flags shared by serve and bench_offline_throughput.
#include <CLI/CLI.hpp>

#include "engine/scheduler.h"

namespace nativelm::cli {

inline void add_scheduler_options(CLI::App& cmd, SchedulerOptions& sch) {
  cmd.add_option("--max-running-requests", sch.max_running_requests, "Requests in the running batch at most")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--chunked-prefill-size", sch.chunked_prefill_size, "Prompt tokens prefilled per step at most")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_option("--max-total-tokens", sch.max_total_tokens, "KV cache capacity in tokens (0: from memory)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--mem-fraction-static", sch.mem_fraction_static, "Fraction of free memory for the KV cache")
      ->capture_default_str()->check(CLI::Range(0.01, 0.99));
  cmd.add_option("--page-size", sch.page_size, "Tokens per KV cache page")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd.add_flag("--disable-radix-cache{false}", sch.prefix_cache,
               "Do not share the KV pages of common prompt prefixes between requests");
  cmd.add_flag_callback(
      "--disable-overlap-schedule", [&sch] { sch.overlap = SchedulerOptions::Overlap::kOff; },
      "Wait for each step's tokens before queuing the next (overlap is on where the backend feeds picked "
      "tokens to the next step itself: CUDA)");
}

}  // namespace nativelm::cli
