#pragma once
// Continuous batching: one thread owns the model and the KV pool and, every
// step, admits waiting requests, runs one forward over all running requests
// (chunked prefill and decode mixed), samples, and streams updates back.
#include <atomic>
#include <condition_variable>
#include <span>
#include <string>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "engine/kv_pool.h"
#include "engine/loaded_model.h"
#include "engine/model_runner.h"
#include "engine/request.h"

namespace nativelm {

struct SchedulerOptions {
  int32_t max_running_requests = 64;
  int32_t chunked_prefill_size = 2048;  // prompt tokens per step at most
  int64_t max_total_tokens = 0;         // KV capacity; 0: derive from mem_fraction_static
  double mem_fraction_static = 0.5;     // of free memory, for the KV pool
  int32_t page_size = 16;
  bool prefix_cache = true;  // share KV pages of common prompt prefixes
  // Overlap scheduling: step N + 1 is queued before step N's tokens reach
  // the host, which then streams them while the device computes. kAuto: on
  // where the backend feeds picked tokens to the next step itself (CUDA).
  enum class Overlap { kAuto, kOn, kOff } overlap = Overlap::kAuto;
};

struct SchedulerStats {
  int64_t running = 0, waiting = 0;
  int64_t kv_pages_total = 0, kv_pages_free = 0, max_total_tokens = 0;
  int64_t requests_finished = 0, prompt_tokens = 0, generated_tokens = 0;
  int64_t retractions = 0;  // requests sent back to the queue when the KV pool ran out
  int64_t cached_tokens = 0;  // prompt tokens served from the prefix cache
  int64_t kv_pages_cached = 0;
  int64_t overlapped_steps = 0;  // steps queued before the previous one's tokens were seen
};

class Scheduler {
 public:
  Scheduler(LoadedModel& model, const SchedulerOptions& options);
  ~Scheduler();  // aborts what is still running and joins the thread

  // Validates and queues a request. Throws nativelm::Error (a client error)
  // when the prompt is empty, a token id is out of range, or prompt +
  // max_new_tokens exceeds the context length or the whole KV pool.
  std::shared_ptr<RequestStream> submit(RequestInput input);
  // Aborts every request (graceful shutdown) and stops the thread.
  void shutdown();
  // Forgets the cached prefixes no running request uses (applied before the next step).
  void flush_cache();
  SchedulerStats stats() const;
  LoadedModel& model() { return model_; }

 private:
  struct Running;
  void loop();
  void take_incoming(bool block);
  void drop_cancelled();
  void admit();
  // Pages the next step needs; retracts the newest requests until it fits.
  struct Batch;
  void make_room(Batch& b);
  Batch next_batch();
  void run_step();
  // The launched step not yet collected (overlap), and collecting it.
  struct InFlight;
  void collect_in_flight();
  void hand_over(Batch& b);
  bool all_device_picked() const;
  // Ends the request: the final update (`u` with timeline and usage added).
  void finish(Running& r, RequestUpdate u);
  bool plain_greedy(const Running& r) const;
  bool device_pickable(const Running& r) const;
  void handle_logits(Running& r, std::span<float> logits);
  void handle_token(Running& r, TokenOutput out);
  void fail_request(Running& r, const std::string& why);
  void take_results(Batch& b, std::span<const int32_t> next, std::span<PickLogprobs> logprobs, std::span<float> logits);
  void reuse_prefix(Running& r);
  void publish_prefix(Running& r);

  LoadedModel& model_;
  SchedulerOptions options_;
  std::unique_ptr<KvPool> pool_;
  std::unique_ptr<ModelRunner> runner_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Running>> incoming_;  // guarded by mutex_
  std::deque<std::shared_ptr<Running>> waiting_;   // scheduler thread only
  std::vector<std::shared_ptr<Running>> running_;  // scheduler thread only
  SchedulerStats stats_;                            // guarded by mutex_
  std::atomic<bool> stop_{false};
  std::atomic<bool> flush_{false};
  std::atomic<uint64_t> next_id_{1};
  bool overlap_ = false;
  int64_t steps_ = 0;
  std::unique_ptr<InFlight> in_flight_;
  std::thread thread_;
};

}  // namespace nativelm
