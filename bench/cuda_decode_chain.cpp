// The weight stream of a batch-1 decode step on the GPU, without attention:
// per layer the four projections of Qwen3-0.6B (norm + qkv, o + residual,
// norm + gate/up + SwiGLU, down + residual) as the model launches them,
// 28 layers recorded in one CUDA graph. Reports the time per step and the
// weight bytes per second, to compare GEMV designs (NATIVELM_GEMV_PREFETCH=0
// keeps every projection on the streaming kernel) against the HBM roofline.
#include <benchmark/benchmark.h>

#ifdef NATIVELM_HAVE_CUDA
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/kernels.h"

namespace nativelm {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

struct Layer {
  void *qkv, *o, *gate_up, *down, *norm1, *norm2;
};

// Small bf16 values (0x3c00 + a little), never inf or nan.
void* weights(int64_t elems) {
  void* p = nullptr;
  check(cudaMalloc(&p, elems * 2), "cudaMalloc");
  check(cudaMemset(p, 0x3c, elems * 2), "cudaMemset");
  return p;
}

void BM_DecodeChain(benchmark::State& state) {
  const int layers = 28, rows = static_cast<int>(state.range(0));
  const int hidden = 1024, q = 2048, kv = 1024, inter = 3072;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    state.SkipWithError("no GPU");
    return;
  }
  cuda::enable_overlapped_launch(true);
  std::vector<Layer> ls(layers);
  for (Layer& l : ls)
    l = {weights(int64_t{q + 2 * kv} * hidden), weights(int64_t{hidden} * q), weights(int64_t{2 * inter} * hidden),
         weights(int64_t{hidden} * inter), weights(hidden), weights(hidden)};
  void* resid = weights(int64_t{rows} * hidden);
  void* qkv = weights(int64_t{rows} * (q + 2 * kv));
  void* act = weights(int64_t{rows} * inter);
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  const auto bf16 = cuda::Ty::BF16;
  const auto step = [&] {
    for (const Layer& l : ls) {
      cuda::gemv_norm(bf16, resid, l.norm1, 1e-6f, l.qkv, nullptr, rows, q + 2 * kv, hidden, qkv, false, s);
      cuda::gemv_add(bf16, qkv, l.o, nullptr, rows, hidden, q, resid, s);  // q stands in for attention's output
      cuda::gemv_norm(bf16, resid, l.norm2, 1e-6f, l.gate_up, nullptr, rows, inter, hidden, act, true, s);
      cuda::gemv_add(bf16, act, l.down, nullptr, rows, hidden, inter, resid, s);
    }
  };
  step();  // first launches set kernel attributes, outside the capture
  check(cudaStreamSynchronize(s), "warm-up");
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  check(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "capture");
  step();
  check(cudaStreamEndCapture(s, &graph), "capture end");
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 20; ++i) cudaGraphLaunch(exec, s);
  for (auto _ : state) {
    cudaEventRecord(a, s);
    cudaGraphLaunch(exec, s);
    cudaEventRecord(b, s);
    check(cudaEventSynchronize(b), "step");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    state.SetIterationTime(ms / 1e3);
  }
  const double bytes = 2.0 * layers * (int64_t{q + 2 * kv} * hidden + hidden * q + 2 * inter * hidden + hidden * inter);
  state.counters["weight_GBps"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
  for (Layer& l : ls)
    for (void* p : {l.qkv, l.o, l.gate_up, l.down, l.norm1, l.norm2}) cudaFree(p);
  for (void* p : {resid, qkv, act}) cudaFree(p);
}
BENCHMARK(BM_DecodeChain)->Arg(1)->Arg(8)->UseManualTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace nativelm
#endif

BENCHMARK_MAIN();
