#include "util/thread_pool.h"

#include <algorithm>
#include <memory>

#if defined(__x86_64__)
#include <immintrin.h>
#define NATIVELM_PAUSE() _mm_pause()
#else
#define NATIVELM_PAUSE() std::this_thread::yield()
#endif

namespace nativelm {

namespace {
constexpr int kSpinIterations = 200000;
std::unique_ptr<ThreadPool> g_pool;
int g_threads = 0;
std::mutex g_pool_mutex;
// Set while a thread executes a pool task, so that nested run() calls go
// inline instead of waiting for workers that are busy running the outer one.
thread_local bool t_in_task = false;
}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  t_in_task = true;
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      NATIVELM_PAUSE();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    (*task_)(index, size());
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (workers_.empty() || t_in_task) {
    fn(0, 1);
    return;
  }
  std::lock_guard turn(run_mutex_);
  t_in_task = true;
  struct Reset {
    ~Reset() { t_in_task = false; }
  } reset;
  task_ = &fn;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  {
    std::lock_guard lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  fn(0, size());
  while (pending_.load(std::memory_order_acquire) != 0) NATIVELM_PAUSE();
  task_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = (n + grain - 1) / grain;
  if (max_chunks <= 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  run([&](int index, int count) {
    const int64_t chunks = std::min<int64_t>(count, max_chunks);
    if (index >= chunks) return;
    const int64_t begin = n * index / chunks;
    const int64_t end = n * (index + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

ThreadPool& ThreadPool::global() {
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(g_threads);
  return *g_pool;
}

void ThreadPool::set_global_threads(int threads) {
  std::lock_guard lock(g_pool_mutex);
  g_threads = threads;
  g_pool.reset();
}

}  // namespace nativelm
