#pragma once
// A fixed pool of worker threads for data-parallel kernels. Decode issues a few
// hundred small parallel loops per token, so workers spin briefly before they
// sleep: waking a sleeping thread costs more than most of those loops.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nativelm {

class ThreadPool {
 public:
  // threads == 0 means one per available core.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(thread_index, thread_count) on every thread (the caller is index 0)
  // and returns when all are done. Calls from several threads at once take
  // turns; a call made from inside fn runs inline as fn(0, 1).
  void run(const std::function<void(int, int)>& fn);

  // Splits [0, n) into contiguous chunks of at least `grain` items, one per
  // thread, and calls fn(begin, end) for each non-empty chunk.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  // The process-wide pool used by the CPU backend.
  static ThreadPool& global();
  static void set_global_threads(int threads);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* task_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::mutex run_mutex_;  // one run() at a time
  std::condition_variable wake_;
};

}  // namespace nativelm
