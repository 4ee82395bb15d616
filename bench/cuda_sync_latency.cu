// The floor under a persistent decode kernel's dependent phases: how long
// one grid barrier (decode_device.cuh, as the decode kernels use it), one
// cluster barrier of 8 blocks, and one "chain" round (every block reads a
// vector from L2, reduces it, writes its slice, then the grid barrier)
// take, and what a round of flagged words (polled one or several at a
// time, few or many of them) or of split-K sums added up in L2 with
// red.global.add (a GEMV split over its input) costs, alone and
// while every block's producer warp keeps some bytes of bulk copies from
// HBM in flight (the weight stream of a decode step; the stream's
// bandwidth is reported too), or copies that hit L2, or copies whose bytes
// were asked of L2 ahead of them (Probe::traffic). Time is per round, from
// block 0's clock over `rounds` rounds in one launch.
//
// Why: at batch 1 a Qwen3-0.6B layer is ~30 us of 1.5-6 us phases against
// ~10 us of weight traffic (docs/benchmarks.md); the next kernel design
// needs these floors, measured, not guessed.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include "backend/cuda/decode_device.cuh"

namespace nativelm::cuda {
namespace {

using namespace decode;

// kChain reads a vector of 8 K floats (the cluster kernel's partial sums);
// kStage reads 3,072 bf16 values (the down projection's input), as the
// op-list kernel stages it after the barrier; kFlagged reads the same
// values packed two to an 8-byte word with the round number in its other
// half, written and polled with single 8-byte accesses, and no barrier:
// a word whose flag is current carries current data.
// kRedV4 / kRedScalar: every block adds a part of a 1,024-wide f32 sum
// (a split-K GEMV's output) with red.global.add (four floats per
// instruction, or one), then counts itself in with a release; the round
// ends when a block has seen every block counted and read the sum back.
// kPipe2 / kPipe4: kFlagged with 2 or 4 polls of each word in flight,
// the first ones `param` ns apart, each issued again as soon as it comes
// back stale: a word that lands would be seen a fraction of a round trip
// sooner, if the extra polls cost nothing.
enum Mode : int {
  kBarrier = 0,
  kChain = 1,
  kCluster = 2,
  kStage = 3,
  kFlagged = 4,
  kRedV4 = 5,
  kRedScalar = 6,
  kPipe2 = 7,
  kPipe4 = 8
};
constexpr int kSumWidth = 1024;
constexpr int kStageValues = 3072;

constexpr int kCopies = 4;  // the traffic's bulk copies in flight per block, of inflight / kCopies bytes each
constexpr int kClusterBlocks = 8;

struct Probe {
  uint32_t* lines;  // kBarrierWords zeroed words
  float* vec;       // [n]: the chain's vector
  uint32_t* half;   // [kStageValues / 2] bf16 pairs (kStage)
  unsigned long long* words;  // [2][kStageValues / 2] flagged pairs (kFlagged)
  float* sums;                // [3][kSumWidth] zeroed (kRedV4, kRedScalar)
  uint32_t* count;            // one zeroed word: blocks counted in, over all rounds
  int n;
  const unsigned char* big;  // the traffic's source, big_bytes (a multiple of every copy size)
  size_t big_bytes;
  int rounds;
  int inflight;            // traffic bytes in flight per block, 0 for none
  // Where the traffic comes from: 0 HBM; -1 a window per block that stays
  // in L2 after its first pass; K > 0 HBM, each copy's bytes asked of L2
  // (cp.async.bulk.prefetch.L2) K KB ahead of it, so that the copies hit L2
  // and the HBM reads sit in L2's queues, not in the SM's.
  int traffic;
  // kFlagged: values a round polls (0: kStageValues); kPipe2 / kPipe4: ns
  // between a word's first polls.
  int param;
  unsigned long long* ns;  // block 0's start and end; the traffic's first start, last end and bytes
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Asks L2 for bytes at src (16-byte aligned, a multiple of 16); nothing comes back
// (traffic > 0).
__device__ __forceinline__ void bulk_prefetch_l2(const void* src, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(src), "r"(bytes) : "memory");
#endif
}

// The producer warp: kCopies bulk copies in flight until *stop, then
// waits for the last ones (the ring must outlive them).
__device__ void stream(const Probe& p, unsigned char* ring, uint64_t* full, volatile int* stop) {
  const int lane = threadIdx.x % 32;
  const uint32_t bytes = p.inflight / kCopies;
  constexpr size_t kWindow = 96 << 10;                  // traffic -1: 132 windows, 12.7 MB of the 50 MB L2
  const size_t part = p.big_bytes / gridDim.x / bytes;  // blocks stream disjoint parts
  const size_t chunks = p.traffic < 0 ? max(size_t{1}, kWindow / bytes) : part;
  const size_t ahead = p.traffic > 0 ? (size_t{static_cast<uint32_t>(p.traffic)} << 10) / bytes : 0;
  const unsigned char* src = p.big + part * bytes * blockIdx.x;
  const unsigned long long start = global_ns();
  if (lane == 0)
    for (size_t c = 0; c < ahead; ++c) bulk_prefetch_l2(src + c % chunks * bytes, bytes);
  size_t chunk = 0;
  uint32_t issued = 0;
  while (!*stop) {
    const int slot = issued % kCopies;
    if (issued >= kCopies) bar_wait(&full[slot], ((issued - kCopies) / kCopies) & 1);
    if (lane == 0) {
      if (ahead) bulk_prefetch_l2(src + (chunk + ahead) % chunks * bytes, bytes);
      bar_expect(&full[slot], bytes);
      bulk_copy(ring + slot * bytes, src + chunk * bytes, bytes, &full[slot]);
    }
    __syncwarp();
    chunk = (chunk + 1) % chunks;
    ++issued;
  }
  for (uint32_t j = issued > kCopies ? issued - kCopies : 0; j < issued; ++j)
    bar_wait(&full[j % kCopies], (j / kCopies) & 1);
  if (lane == 0) {
    atomicMin(p.ns + 2, start);
    atomicMax(p.ns + 3, global_ns());
    atomicAdd(p.ns + 4, static_cast<unsigned long long>(issued) * bytes);
  }
}

// The sum of every compute thread's s (warp_part: a float per warp).
__device__ float block_total(float s, float* warp_part) {
  s = warp_sum(s);
  if (threadIdx.x % 32 == 0) warp_part[threadIdx.x / 32] = s;
  csync();
  float total = 0.0f;
  for (int w = 0; w < kWarps; ++w) total += warp_part[w];
  return total;
}

// This block's share [e0, e1) of n elements.
__device__ void block_slice(int n, int& e0, int& e1) {
  e0 = static_cast<int>(int64_t{n} * blockIdx.x / gridDim.x);
  e1 = static_cast<int>(int64_t{n} * (blockIdx.x + 1) / gridDim.x);
}

// One chain round's work before its barrier: the whole vector from L2,
// summed over the block, and this block's slice of it rewritten.
__device__ void chain_round(const Probe& p, float* warp_part) {
  float s = 0.0f;
  for (int e = threadIdx.x; e < p.n; e += kThreads) s += __ldcg(p.vec + e);
  const float total = block_total(s, warp_part);
  int e0, e1;
  block_slice(p.n, e0, e1);
  for (int e = e0 + threadIdx.x; e < e1; e += kThreads) p.vec[e] = 1.0f + total * 1e-12f;
}

// kStage: the bf16 values from L2 (one 16-byte load per thread, as the
// decode kernel's staging), summed, and this block's slice rewritten.
__device__ void stage_round(const Probe& p, float* warp_part) {
  float s = 0.0f;
  const uint4* v = reinterpret_cast<const uint4*>(p.half);
  for (int e = threadIdx.x; e < kStageValues / 8; e += kThreads) {
    const uint4 x = __ldcg(v + e);
    s += __uint_as_float(x.x) + __uint_as_float(x.y) + __uint_as_float(x.z) + __uint_as_float(x.w);
  }
  const float total = block_total(s, warp_part);
  int e0, e1;
  block_slice(kStageValues / 2, e0, e1);
  for (int e = e0 + threadIdx.x; e < e1; e += kThreads) p.half[e] = __float_as_uint(1.0f + total * 1e-30f) & 0x7fff7fff;
}

// One poll of a flagged word (a word of round r carries r in its high half).
__device__ __forceinline__ unsigned long long poll_load(const unsigned long long* at) {
  unsigned long long w;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];\n" : "=l"(w) : "l"(at) : "memory");
  return w;
}

// This block's slice of the nw words at out, flagged round + 1, with a
// value made from the sum of every word it read (so no read is skipped).
__device__ __forceinline__ void flagged_write(unsigned long long* out, int nw, uint32_t round, float total) {
  int e0, e1;
  block_slice(nw, e0, e1);
  for (int e = e0 + threadIdx.x; e < e1; e += kThreads) {
    const unsigned long long v =
        (static_cast<unsigned long long>(round + 1) << 32) | (__float_as_uint(1.0f + total * 1e-30f) & 0x7fff7fff);
    asm volatile("st.relaxed.gpu.global.u64 [%0], %1;\n" ::"l"(out + e), "l"(v) : "memory");
  }
  csync();  // warp_part is rewritten next round
}

// kFlagged: poll every word until its flag is `round`, then write this
// block's slice with flag round + 1, in the other of two copies. No
// barrier: a block writes round + 2's slice only after reading every slice
// of round + 1, which each block writes after its reads of `round`, so no
// slice is overwritten while a block may still wait for it. (The decode
// kernel writes each op's output once per step: one copy.)
__device__ void flagged_round(const Probe& p, float* warp_part, uint32_t round) {
  constexpr int kPer = (kStageValues / 2 + kThreads - 1) / kThreads;
  const int nw = p.param > 0 ? min(p.param, kStageValues) / 2 : kStageValues / 2;
  float s = 0.0f;
  const unsigned long long* in = p.words + (round % 2) * (kStageValues / 2);
  unsigned long long* out = p.words + (round % 2 ^ 1) * (kStageValues / 2);
  unsigned long long w[kPer];
  bool done[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) done[j] = threadIdx.x + j * kThreads >= nw;
  SpinWatch watch{true};
  for (bool all = false; !all;) {
    all = true;
#pragma unroll
    for (int j = 0; j < kPer; ++j)
      if (!done[j])
        w[j] = poll_load(in + threadIdx.x + j * kThreads);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
      if (!done[j]) {
        done[j] = static_cast<uint32_t>(w[j] >> 32) == round;
        if (done[j]) s += __uint_as_float(static_cast<uint32_t>(w[j]) & 0x7fff7fff);
        all = all && done[j];
      }
    watch.tick();
  }
  flagged_write(out, nw, round, block_total(s, warp_part));
}

__device__ __forceinline__ void spin_ns(int ns) {
  const unsigned long long t = global_ns();
  while (global_ns() - t < static_cast<unsigned long long>(ns)) {
  }
}

// kPipe2 / kPipe4: flagged_round with G polls of each word in flight. Not
// flagged_round<1>: folded together, mode 4 ran ~0.15 us slower a round
// (measured), and mode 4 polls as the decode kernel does.
template <int G>
__device__ void pipe_round(const Probe& p, float* warp_part, uint32_t round) {
  constexpr int kPer = (kStageValues / 2 + kThreads - 1) / kThreads;
  float s = 0.0f;
  const unsigned long long* in = p.words + (round % 2) * (kStageValues / 2);
  unsigned long long* out = p.words + (round % 2 ^ 1) * (kStageValues / 2);
  unsigned long long w[G][kPer];
  bool done[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) done[j] = threadIdx.x + j * kThreads >= kStageValues / 2;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g > 0 && p.param > 0) spin_ns(p.param);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
      if (!done[j])
        w[g][j] = poll_load(in + threadIdx.x + j * kThreads);
  }
  SpinWatch watch{true};
  for (bool all = false; !all;) {
#pragma unroll
    for (int g = 0; g < G && !all; ++g) {
      all = true;
#pragma unroll
      for (int j = 0; j < kPer; ++j)
        if (!done[j]) {
          done[j] = static_cast<uint32_t>(w[g][j] >> 32) == round;
          if (done[j]) s += __uint_as_float(static_cast<uint32_t>(w[g][j]) & 0x7fff7fff);
          all = all && done[j];
        }
#pragma unroll
      for (int j = 0; j < kPer; ++j)
        if (!done[j])
          w[g][j] = poll_load(in + threadIdx.x + j * kThreads);
    }
    watch.tick();
  }
  flagged_write(out, kStageValues / 2, round, block_total(s, warp_part));
}

// kRedV4 / kRedScalar: round r adds to sums[r % 3], which every block
// zeroes its slice of two rounds ahead (sums[(r + 1) % 3] was last read in
// round r - 2, before any block counted itself into round r - 1, and the
// zeroes are ordered before this block's count of round r, which every
// adder of round r + 1 has seen).
template <bool kV4>
__device__ void red_round(const Probe& p, float* warp_part, uint32_t round) {
  float* sum = p.sums + (round % 3) * kSumWidth;
  float* next = p.sums + ((round + 1) % 3) * kSumWidth;
  int e0, e1;
  block_slice(kSumWidth, e0, e1);
  for (int e = e0 + threadIdx.x; e < e1; e += kThreads) next[e] = 0.0f;
  const float part = 1.0f + blockIdx.x * 1e-3f;
  if (kV4) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900  // vector reductions are sm_90's
    if (threadIdx.x < kSumWidth / 4)
      asm volatile("red.relaxed.gpu.global.add.v4.f32 [%0], {%1, %1, %1, %1};\n" ::"l"(sum + threadIdx.x * 4), "f"(part)
                   : "memory");
#endif
  } else {
    for (int e = threadIdx.x; e < kSumWidth; e += kThreads)
      asm volatile("red.relaxed.gpu.global.add.f32 [%0], %1;\n" ::"l"(sum + e), "f"(part) : "memory");
  }
  csync();
  if (threadIdx.x == 0) asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(p.count) : "memory");
  const uint32_t target = (round + 1) * gridDim.x;
  if (threadIdx.x == 0) {
    SpinWatch watch{true};
    for (uint32_t c = 0;;) {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(c) : "l"(p.count) : "memory");
      if (c >= target) break;
      watch.tick();
    }
  }
  csync();
  float s = 0.0f;
  for (int e = threadIdx.x; e < kSumWidth; e += kThreads) s += __ldcg(sum + e);
  block_total(s, warp_part);
  csync();
}

template <int M>
// Run on sm_90 and newer only (BM_SyncLatency); the sm_90 instructions are
// left out of other targets' builds.
__global__ void __launch_bounds__(kBlockThreads, 1) probe(const __grid_constant__ Probe p) {
  extern __shared__ __align__(128) unsigned char ring[];
  __shared__ uint64_t full[kCopies];
  __shared__ volatile int stop;
  __shared__ float warp_part[kWarps];
  __shared__ uint32_t seen[kClusterBlocks];
  if (threadIdx.x == 0) {
    stop = 0;
    for (int i = 0; i < kCopies; ++i) bar_init(full + i);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
  }
  if (threadIdx.x < kClusterBlocks) seen[threadIdx.x] = 0;
  __syncthreads();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (M == kCluster)
    asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
  if (threadIdx.x >= kThreads) {
    if (p.inflight > 0) stream(p, ring, full, &stop);
    return;
  }
  uint32_t passes = 0, phase = 0;
  grid_barrier(p.lines, passes, nullptr, true);  // everyone started (and the traffic is on)
  const unsigned long long t0 = global_ns();
  for (int r = 0; r < p.rounds; ++r) {
    if (M == kChain) chain_round(p, warp_part);
    if (M == kStage) stage_round(p, warp_part);
    if (M == kFlagged) {
      flagged_round(p, warp_part, static_cast<uint32_t>(r));
      continue;
    }
    if (M == kPipe2 || M == kPipe4) {
      pipe_round<M == kPipe2 ? 2 : 4>(p, warp_part, static_cast<uint32_t>(r));
      continue;
    }
    if (M == kRedV4 || M == kRedScalar) {
      red_round<M == kRedV4>(p, warp_part, static_cast<uint32_t>(r));
      continue;
    }
    if (M == kCluster) {
      unsigned int rank = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
#endif
      cluster_sync(seen, static_cast<int>(rank), kClusterBlocks, phase);
    } else {
      grid_barrier(p.lines, passes, nullptr, true);
    }
  }
  const unsigned long long t1 = global_ns();
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    p.ns[0] = t0;
    p.ns[1] = t1;
  }
  // Blocks of a cluster leave together (no peer's shared memory is read
  // after its block exits).
  grid_barrier(p.lines, passes, nullptr, true);
  if (threadIdx.x == 0) stop = 1;
}

// The probe kernel of each mode, by its number.
constexpr void (*kProbes[])(Probe) = {
    probe<kBarrier>, probe<kChain>,     probe<kCluster>, probe<kStage>, probe<kFlagged>,
    probe<kRedV4>,   probe<kRedScalar>, probe<kPipe2>,   probe<kPipe4>,
};
static_assert(sizeof kProbes / sizeof kProbes[0] == kPipe4 + 1, "a kernel per mode, in mode order");

struct Device {
  int sms = 0, clusters = 0, smem = 0;
  Probe p{};
  Device() {
    check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "device");
    // Enough shared memory that one block fills an SM, as the decode kernels do.
    int optin = 0;
    check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0), "device");
    smem = optin - 8192;
    for (auto k : kProbes) check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "smem");
    cudaLaunchConfig_t cfg = config(kClusterBlocks);
    cudaLaunchAttribute attr[1];
    set_cluster_blocks(cfg, attr, kClusterBlocks);
    check(cudaOccupancyMaxActiveClusters(&clusters, probe<kCluster>, &cfg), "clusters");
    check(cudaMalloc(&p.lines, kBarrierWords * 4), "cudaMalloc");
    p.n = 8 * 1024;  // the cluster kernel's staging: 8 partial sums of a 1,024 hidden
    check(cudaMalloc(&p.vec, p.n * 4), "cudaMalloc");
    check(cudaMemset(p.vec, 0, p.n * 4), "cudaMemset");
    check(cudaMalloc(&p.half, kStageValues * 2), "cudaMalloc");
    check(cudaMemset(p.half, 0, kStageValues * 2), "cudaMemset");
    check(cudaMalloc(&p.words, kStageValues * 8), "cudaMalloc");
    check(cudaMalloc(&p.sums, 3 * kSumWidth * 4), "cudaMalloc");
    check(cudaMalloc(&p.count, 4), "cudaMalloc");
    p.big_bytes = size_t{1} << 30;  // well past the 50 MB L2
    unsigned char* big = nullptr;
    check(cudaMalloc(&big, p.big_bytes), "cudaMalloc");
    check(cudaMemset(big, 1, p.big_bytes), "cudaMemset");
    p.big = big;
    check(cudaMalloc(&p.ns, 5 * 8), "cudaMalloc");
  }
  cudaLaunchConfig_t config(int blocks) const {
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(kBlockThreads);
    cfg.dynamicSmemBytes = static_cast<size_t>(smem);
    return cfg;
  }
  // Seconds per round of one launch, and the traffic's bytes per second.
  double run(int mode, int inflight, int param, int traffic, int rounds, double& traffic_bps) {
    p.rounds = rounds;
    p.traffic = traffic;
    p.param = param;
    p.inflight = inflight;
    check(cudaMemset(p.lines, 0, kBarrierWords * 4), "cudaMemset");
    check(cudaMemset(p.words, 0, kStageValues * 8), "cudaMemset");  // flag 0: round 0's input is there
    check(cudaMemset(p.sums, 0, 3 * kSumWidth * 4), "cudaMemset");
    check(cudaMemset(p.count, 0, 4), "cudaMemset");
    unsigned long long init[5] = {0, 0, ~0ull, 0, 0};
    check(cudaMemcpy(p.ns, init, sizeof init, cudaMemcpyHostToDevice), "cudaMemcpy");
    cudaLaunchAttribute attr[1];
    cudaLaunchConfig_t cfg = config(mode == kCluster ? clusters * kClusterBlocks : sms);
    if (mode == kCluster) set_cluster_blocks(cfg, attr, kClusterBlocks);
    check(cudaLaunchKernelEx(&cfg, kProbes[mode], p), "launch");
    check(cudaDeviceSynchronize(), "probe");
    unsigned long long ns[5];
    check(cudaMemcpy(ns, p.ns, sizeof ns, cudaMemcpyDeviceToHost), "cudaMemcpy");
    traffic_bps = inflight > 0 ? static_cast<double>(ns[4]) / (static_cast<double>(ns[3] - ns[2]) * 1e-9) : 0.0;
    return static_cast<double>(ns[1] - ns[0]) * 1e-9 / rounds;
  }
};

Device& device() {
  static Device d;
  return d;
}

// Args: mode (0 grid barrier, 1 chain round, 2 cluster barrier, 3 staging
// round, 4 flagged round, 5 and 6 split-K sums with vector and scalar
// reductions, 7 and 8 flagged rounds with 2 or 4 polls in flight), traffic
// bytes in flight per block (KB), Probe::param (mode 4: values polled;
// 7 and 8: ns between the first polls; 0 elsewhere) and Probe::traffic.
void BM_SyncLatency(benchmark::State& state) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    state.SkipWithError("no CUDA device");
    return;
  }
  int major = 0;
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0);
  if (major < 9) {
    state.SkipWithError("needs sm_90 (bulk copies, clusters)");
    return;
  }
  Device& d = device();
  const int mode = static_cast<int>(state.range(0));
  const int inflight = static_cast<int>(state.range(1)) << 10;
  const int param = static_cast<int>(state.range(2));
  const int traffic = static_cast<int>(state.range(3));
  double bps = 0.0;
  d.run(mode, inflight, param, traffic, 100, bps);  // warm-up
  for (auto _ : state) state.SetIterationTime(d.run(mode, inflight, param, traffic, 2000, bps));
  state.counters["blocks"] = mode == kCluster ? d.clusters * kClusterBlocks : d.sms;
  state.counters["traffic_GBps"] = bps * 1e-9;
}
BENCHMARK(BM_SyncLatency)
    ->ArgNames({"mode", "inflight_kb", "param", "traffic"})
    ->ArgsProduct(
        {{kBarrier, kChain, kCluster, kStage, kFlagged, kRedV4, kRedScalar}, {0, 8, 16, 32, 64, 128}, {0}, {0}})
    ->ArgsProduct({{kPipe2, kPipe4}, {0, 16, 32}, {0, 150, 300, 500}, {0}})
    ->ArgsProduct({{kFlagged}, {0, 16, 32}, {256, 512, 1024, 2048}, {0}})      // fewer values a round
    ->ArgsProduct({{kFlagged}, {8, 16, 32, 64}, {0}, {-1, 32, 64, 128, 256}})  // copies that hit L2
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->Iterations(5);

}  // namespace
}  // namespace nativelm::cuda

BENCHMARK_MAIN();
