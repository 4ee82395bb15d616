// Read bandwidth of main memory with all threads: the denominator of the
// decode roofline (bytes of weights per token / bytes per second).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "util/thread_pool.h"

namespace {

void BM_ReadBandwidth(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  std::vector<uint64_t> buffer(bytes / 8);
  std::memset(buffer.data(), 1, bytes);  // touch every page before timing
  auto& pool = nativelm::ThreadPool::global();
  std::vector<uint64_t> sums(pool.size() * 8);
  for (auto _ : state) {
    pool.parallel_for(static_cast<int64_t>(buffer.size()), 1 << 16, [&](int64_t begin, int64_t end) {
      uint64_t a = 0, b = 0, c = 0, d = 0;
      for (int64_t i = begin; i + 4 <= end; i += 4) {
        a += buffer[i];
        b += buffer[i + 1];
        c += buffer[i + 2];
        d += buffer[i + 3];
      }
      sums[(begin * pool.size() / static_cast<int64_t>(buffer.size())) * 8] = a + b + c + d;
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
