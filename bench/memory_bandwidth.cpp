// Read bandwidth of main memory with all threads: the denominator of the
// decode roofline (bytes of weights per token / bytes per second).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "util/thread_pool.h"

namespace {

// Sums [begin, end) as four interleaved streams of 32-byte loads, the access
// pattern of a GEMV over four weight rows.
__attribute__((target("avx2"))) uint64_t sum_streams(const uint64_t* data, int64_t begin, int64_t end) {
  const int64_t quarter = (end - begin) / 4 / 4 * 4;
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
  for (int64_t i = 0; i < quarter; i += 4)
    for (int s = 0; s < 4; ++s)
      acc[s] = _mm256_add_epi64(acc[s], _mm256_loadu_si256(reinterpret_cast<const __m256i*>(data + begin + s * quarter + i)));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3])));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

void BM_ReadBandwidth(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  std::vector<uint64_t> buffer(bytes / 8);
  std::memset(buffer.data(), 1, bytes);  // touch every page before timing
  auto& pool = nativelm::ThreadPool::global();
  std::vector<uint64_t> sums(pool.size() * 8);
  for (auto _ : state) {
    pool.parallel_for(static_cast<int64_t>(buffer.size()), 1 << 16, [&](int64_t begin, int64_t end) {
      sums[(begin * pool.size() / static_cast<int64_t>(buffer.size())) * 8] = sum_streams(buffer.data(), begin, end);
    });
    benchmark::DoNotOptimize(sums.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}
BENCHMARK(BM_ReadBandwidth)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
