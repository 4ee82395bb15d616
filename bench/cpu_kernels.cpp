// CPU kernel micro-benchmarks on Qwen3-0.6B shapes (hidden 1024, intermediate
// 3072, vocab 151936, 16 query / 8 kv heads of 128), bf16 weights.
// NATIVELM_CPU_ISA picks the level; the thread count is the global pool's.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "util/dtype.h"
#include "util/thread_pool.h"

namespace nativelm {
namespace {

std::vector<uint16_t> random_bf16(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.05f, 0.05f);
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = f32_to_bf16(dist(rng));
  return v;
}

std::vector<float> random_f32(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Decode: one row. Enough weight copies are cycled through that together they
// exceed the 260 MB L3 cache, so this measures streaming from DRAM as a real
// model's 1.2 GB of weights per token does.
void BM_GemvBf16(benchmark::State& state) {
  const int64_t k = state.range(0), m = state.range(1);
  const int64_t bytes = k * m * 2;
  const int64_t copies = std::max<int64_t>(1, (512ll << 20) / bytes);
  std::vector<std::vector<uint16_t>> weights;
  for (int64_t c = 0; c < copies; ++c) weights.push_back(random_bf16(k * m, 1 + c));
  std::vector<float> x = random_f32(k, 7), out(m);
  CpuBackend be;
  Tensor xt(x.data(), DType::F32, {1, k}), ot(out.data(), DType::F32, {1, m});
  int64_t c = 0;
  for (auto _ : state) {
    Tensor w(weights[c].data(), DType::BF16, {m, k});
    be.linear(xt, w, nullptr, ot);
    benchmark::DoNotOptimize(out.data());
    c = (c + 1) % copies;
  }
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetLabel(be.name());
}
BENCHMARK(BM_GemvBf16)
    ->Args({1024, 3072})
    ->Args({3072, 1024})
    ->Args({1024, 151936})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Prefill (512 rows) and batched decode (64 rows).
void BM_GemmBf16(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  std::vector<uint16_t> w = random_bf16(k * m, 3);
  std::vector<float> x = random_f32(n * k, 7), out(n * m);
  CpuBackend be;
  Tensor xt(x.data(), DType::F32, {n, k}), ot(out.data(), DType::F32, {n, m});
  Tensor wt(w.data(), DType::BF16, {m, k});
  for (auto _ : state) {
    be.linear(xt, wt, nullptr, ot);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(
      static_cast<double>(2 * n * k * m) * 1e-9 * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate);
  state.SetLabel(be.name());
}
BENCHMARK(BM_GemmBf16)
    ->Args({512, 1024, 3072})
    ->Args({512, 3072, 1024})
    ->Args({512, 1024, 151936})
    ->Args({64, 1024, 3072})
    ->Args({64, 3072, 1024})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// One layer's decode attention for one sequence at a given context length,
// bf16 KV pool, pages of 16 in order.
void BM_AttentionDecode(benchmark::State& state) {
  const int64_t ctx = state.range(0), hd = 128, heads = 16, kv_heads = 8, page = 16;
  const int64_t width = kv_heads * hd;
  std::vector<uint16_t> k_pool = random_bf16(ctx * width, 1), v_pool = random_bf16(ctx * width, 2);
  std::vector<float> q = random_f32(heads * hd, 3), k = random_f32(width, 4),
                     v = random_f32(width, 5), out(heads * hd);
  std::vector<int32_t> pages((ctx + page - 1) / page);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<int32_t>(i);
  AttentionBatch batch;
  batch.page_size = static_cast<int32_t>(page);
  batch.seqs.push_back({0, 1, static_cast<int32_t>(ctx), pages.data()});
  batch.slots.push_back(static_cast<int32_t>(ctx - 1));
  CpuBackend be;
  Tensor qt(q.data(), DType::F32, {1, heads * hd}), kt(k.data(), DType::F32, {1, width}),
      vt(v.data(), DType::F32, {1, width}), ot(out.data(), DType::F32, {1, heads * hd});
  Tensor kp(k_pool.data(), DType::BF16, {ctx, width}), vp(v_pool.data(), DType::BF16, {ctx, width});
  for (auto _ : state) {
    be.attention(qt, kt, vt, kp, vp, batch, hd, 0.088388f, ot);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * ctx * width * 2 * 2);
  state.SetLabel(be.name());
}
BENCHMARK(BM_AttentionDecode)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One layer's attention for a fresh prompt of n tokens (causal, bf16 pool).
void BM_AttentionPrefill(benchmark::State& state) {
  const int64_t n = state.range(0), hd = 128, heads = 16, kv_heads = 8, page = 16;
  const int64_t width = kv_heads * hd;
  std::vector<uint16_t> k_pool(n * width), v_pool(n * width);
  std::vector<float> q = random_f32(n * heads * hd, 3), k = random_f32(n * width, 4),
                     v = random_f32(n * width, 5), out(n * heads * hd);
  std::vector<int32_t> pages((n + page - 1) / page);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = static_cast<int32_t>(i);
  AttentionBatch batch;
  batch.page_size = static_cast<int32_t>(page);
  batch.seqs.push_back({0, static_cast<int32_t>(n), static_cast<int32_t>(n), pages.data()});
  for (int64_t i = 0; i < n; ++i) batch.slots.push_back(static_cast<int32_t>(i));
  CpuBackend be;
  Tensor qt(q.data(), DType::F32, {n, heads * hd}), kt(k.data(), DType::F32, {n, width}),
      vt(v.data(), DType::F32, {n, width}), ot(out.data(), DType::F32, {n, heads * hd});
  Tensor kp(k_pool.data(), DType::BF16, {n, width}), vp(v_pool.data(), DType::BF16, {n, width});
  for (auto _ : state) {
    be.attention(qt, kt, vt, kp, vp, batch, hd, 0.088388f, ot);
    benchmark::DoNotOptimize(out.data());
  }
  // q.k and p.v over the causal triangle.
  const double flops = 4.0 * heads * hd * (n * (n + 1) / 2);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.SetLabel(be.name());
}
BENCHMARK(BM_AttentionPrefill)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace nativelm

// NATIVELM_THREADS sets the pool size, to measure one core's kernel speed.
int main(int argc, char** argv) {
  if (const char* t = std::getenv("NATIVELM_THREADS"))
    nativelm::ThreadPool::set_global_threads(std::atoi(t));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
