#pragma once
// Device code shared by the two persistent decode kernels (decode_kernel.cu:
// any op list, a grid barrier between two ops; decode_cluster.cu: one row,
// a layer as two grid-wide steps with the blocks of a cluster working
// together inside each): the weight ring that a producer warp fills with
// bulk copies, the grid barrier, the tensor-core GEMV of one load, and the
// attention step over one load of cached positions.
#include <cstdint>
#include <type_traits>

#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemv_common.cuh"

namespace nativelm::cuda::decode {

// kThreads compute threads, then one producer warp (see produce()).
constexpr int kThreads = kDecodeComputeThreads, kWarps = kThreads / 32, kBlockThreads = kThreads + 32;
// Powers of two: a GEMV tile's warps (parts) are kWarps >> log2(tiles).
constexpr int kLogWarps = kWarps == 16 ? 4 : kWarps == 8 ? 3 : -1;
static_assert(kLogWarps > 0 && kWarps == 1 << kLogWarps, "warps per block: a power of two");
constexpr int kInflight = 8;   // loads in flight per block at most
constexpr int kSubChunk = 128;  // attention positions per load
constexpr int kMaxGroup = 8;   // query heads per kv head
constexpr int kMaxHd = 128;
// Passes of the threads over the (query head, element) pairs of a kv head.
constexpr int kPasses = kMaxGroup * kMaxHd / kThreads;
constexpr int kMaxLoadRows = kThreads / kMaxDecodeRows;  // weight rows per load (a thread per output)
constexpr int kMaxMergeChunks = 160;  // chunks per (row, kv head)
constexpr int kMergeBatch = 16;       // chunks a flagged merge takes per round trip (below 32: a bit mask)
// A thread for each (query head, chunk, m or l) word of a merge batch.
static_assert(kMergeBatch < 32 && 2 * kMaxGroup * kMergeBatch <= kThreads, "a flagged merge batch's words");
constexpr int kXsBudget = 64 << 10;   // input staging: rows * padded(k) * 2 bytes at most
constexpr int kStageRegs = 8;         // 16-byte input pieces a thread holds while staging (rows * k <= 32K)

// --- geometry: what a block reads for each op ---

struct GemvSpan {
  int r0, r1, rows_per_load, loads;
};

// Weight rows and staged input rows lie in shared memory 64 bytes apart
// modulo 128: a 16-byte load is served a quarter warp at a time, and a
// quarter warp of gemv_rows reads 4 contiguous 16-byte pieces of two rows
// (g and g + 1), which then fall on the 8 different 16-byte bank groups.
// With rows a multiple of 128 bytes apart the two rows' pieces collided
// (measured: the dot products of a 64 KB load took ~1,350 cycles, twice
// what the shared-memory bandwidth needs).
__host__ __device__ constexpr int padded(int k) { return k % 64 == 0 ? k + 32 : k; }

// x rounded up to a multiple of m.
template <class I>
__host__ __device__ constexpr I round_up(I x, I m) {
  return (x + m - 1) / m * m;
}

// n / d for n, d < 2^16 by a multiply: magic = (2^32 - 1) / d + 1 (one
// division per op instead of one per use; the integer division is a
// subroutine of ~25 dependent instructions).
__device__ __forceinline__ uint32_t div_magic(uint32_t d) { return 0xffffffffu / d + 1; }
__device__ __forceinline__ int fast_div(int n, uint32_t magic) { return static_cast<int>(__umulhi(n, magic)); }

// log2 of the power of two at or above x (x >= 1).
__device__ __forceinline__ int ceil_log2(int x) { return 32 - __clz(x - 1); }

struct AttnItem {
  bool active;
  int row, kvh, chunk, p0, p1, visible, used, page_off, loads;
  int group;       // query heads per kv head
  uint32_t by_hd;  // div_magic(head_dim): attention splits thread indices into (head, element)
};

// Positions [q0, q1) of load j; the first `cached` of them come from the pools.
__device__ __forceinline__ void attn_sub(const AttnItem& it, int j, int& q0, int& q1, int& cached) {
  q0 = it.p0 + j * kSubChunk;
  q1 = min(it.p1, q0 + kSubChunk);
  cached = max(0, min(q1, it.visible - 1) - q0);
}

// The Hopper bulk-copy engine (TMA) moves the loads: one instruction per
// contiguous run, completion counted in bytes on an mbarrier per ring slot.
// Per-thread cp.async copies clogged the load/store pipe that the shared
// memory reads of the dot products go through (measured: 4x slower).
[[maybe_unused]] __device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void bar_init(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
__device__ __forceinline__ void bar_arrive(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
__device__ __forceinline__ void bar_expect(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .b64 st;\n mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
#endif
}
__device__ __forceinline__ bool bar_test(uint64_t* bar, uint32_t parity) {
  uint32_t done = 1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .pred p;\n mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(smem_addr(bar)), "r"(parity)
               : "memory");
#endif
  return done != 0;
}
__device__ __forceinline__ void bar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
#endif
}
__device__ __forceinline__ void bulk_copy(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
#endif
}

// A box of a 2-D tensor map (x innermost) to shared memory (128-byte aligned).
__device__ __forceinline__ void bulk_box(void* dst, const void* map, int x, int y, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(dst)),
      "l"(map), "r"(x), "r"(y), "r"(smem_addr(bar))
      : "memory");
#endif
}

// --- the ring ---

// Load n goes to slot n % kInflight: `full` completes a phase when its
// bytes have landed, `empty` when the compute threads are done with it.
struct RingShared {
  uint32_t start[kInflight];  // ring offsets (byte offsets that only grow, mod the size)
  // Set from an op's last load until the next op's input is staged: the
  // producer issues nothing then. Loads in flight slow the grid barrier's
  // few requests (measured 2.6-3.5 us a barrier with the ring refilling,
  // 0.7-1.5 without) and the staging's L2 reads, both on the critical path.
  volatile int hold;
  uint64_t full[kInflight], empty[kInflight];
};

// The compute threads' view; each keeps an identical copy in registers.
struct Ring {
  unsigned char* base;
  uint32_t size;
  uint32_t used;  // loads consumed
  RingShared* sh;
  const AttnItem* item;           // this block's attention item, shared memory
  const GemvSpan* spans;          // [num_ops] this block's rows of each GEMV (attention: loads only)
  unsigned long long* trace;      // tracing only: this block's stamps of op 0
  unsigned long long waited;      // tracing only: cycles front() waited in the op at hand
  unsigned long long* op_stamps;  // tracing only: this block's stamps of the op at hand
};

// Thread 0 records the SM clock at point `at` (10 and up) of the op at hand
// (tracing only).
__device__ __forceinline__ void fine_stamp(unsigned long long* stamps, int at) {
  if (stamps && threadIdx.x == 0) stamps[at] = clock64();
}

// The producer warp's place in the ring: reserve() waits until the ring has
// room for the next load, fewer than `cap` bytes are still on their way
// (capped) and the compute threads do not hold it (held), then returns
// where the load goes and the barrier its bytes count on.
struct Feeder {
  RingShared& sh;
  unsigned char* base;
  uint32_t size, cap;
  uint32_t head, issued, freed, landed;

  __device__ unsigned char* reserve(uint32_t bytes, uint64_t*& bar, bool capped = true, bool held = true,
                                    uint32_t align = 16) {
    uint32_t at = round_up(head, align);
    if (at % size + bytes > size) at += size - at % size;
    while (issued - freed >= kInflight || (freed < issued && at + bytes - sh.start[freed % kInflight] > size)) {
      bar_wait(&sh.empty[freed % kInflight], (freed / kInflight) & 1);
      ++freed;
    }
    // Loads land in order; freed ones have landed. sh.start of a load not
    // yet freed is still its own (its slot is not reused before).
    landed = max(landed, freed);
    while (capped && landed < issued && head - sh.start[landed % kInflight] + bytes > cap) {
      bar_wait(&sh.full[landed % kInflight], (landed / kInflight) & 1);
      ++landed;
    }
    while (held && sh.hold) {
    }
    const int slot = issued % kInflight;
    if (threadIdx.x % 32 == 0) sh.start[slot] = at;  // before lane 0's arrival on `full` publishes it
    bar = &sh.full[slot];
    head = at + bytes;
    ++issued;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // The consumers' generic reads of this ring space (their release of it
    // was acquired through the empty barrier) come before the bulk copies.
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
    return base + at % size;
  }
};

// Thread 0 sets up the ring's barriers (the block's threads meet before use).
__device__ __forceinline__ void init_ring(RingShared& sh) {
  sh.hold = 0;
  for (int i = 0; i < kInflight; ++i) {
    bar_init(sh.full + i);
    bar_init(sh.empty + i);
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// The compute threads' barrier (the producer warp is not in it).
__device__ __forceinline__ void csync() { asm volatile("bar.sync 1, %0;\n" ::"n"(kThreads) : "memory"); }

// Waits for the oldest load and returns where it is.
__device__ __forceinline__ const unsigned char* front(Ring& r) {
  const int slot = r.used % kInflight;
  const unsigned long long t0 = r.trace ? clock64() : 0;
  if (!bar_test(&r.sh->full[slot], (r.used / kInflight) & 1)) {
    if (threadIdx.x == 0) r.sh->hold = 0;  // the load may not be issued yet
    bar_wait(&r.sh->full[slot], (r.used / kInflight) & 1);
  }
  if (r.trace) r.waited += clock64() - t0;
  return r.base + r.sh->start[slot] % r.size;
}

// The producer stops before the op's last load is handed back (see
// RingShared::hold) and goes on once the next op's input is staged.
__device__ __forceinline__ void hold_producer(const DecodeProgram& p, Ring& r) {
  if (p.hold && threadIdx.x == 0) r.sh->hold = 1;
}
__device__ __forceinline__ void release_producer(const DecodeProgram& p, Ring& r) {
  if (p.hold && threadIdx.x == 0) r.sh->hold = 0;
}

// Hands the oldest load's space back to the producer (every compute thread
// is done with it).
__device__ __forceinline__ void pop(Ring& r) {
  csync();
  if (threadIdx.x == 0) bar_arrive(&r.sh->empty[r.used % kInflight]);
  ++r.used;
}

// All blocks have finished the op before; its writes are visible after.
// Block b counts its arrival on line b % kBarrierLines; lane j of warp 0
// waits for line j to reach `passes` times the blocks that count there.
// A spin that outlasts kSpinLimitNs waits for a block that will not come
// (a bug, or blocks that are not all resident at once): with `watch` the
// kernel traps, so the launch fails with an error instead of hanging.
constexpr unsigned long long kSpinLimitNs = 10'000'000'000ull;
__device__ __forceinline__ unsigned long long global_ns() {
  unsigned long long ns;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(ns));
  return ns;
}
struct SpinWatch {
  bool on;
  unsigned long long since = 0;
  uint32_t spins = 0;
  // Called once per spin; looks at the clock every 1,024 spins.
  __device__ __forceinline__ void tick() {
    if (!on || (++spins & 1023) != 0) return;
    const unsigned long long now = global_ns();
    if (since == 0) since = now;
    if (now - since > kSpinLimitNs) __trap();
  }
};

__device__ __forceinline__ void grid_barrier(uint32_t* lines, uint32_t& passes, unsigned long long* stamps,
                                             bool watch = false) {
  csync();
  ++passes;
  if (threadIdx.x < 32) {
    const int lane = threadIdx.x;
    if (lane == 0 && stamps) asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(stamps[8]));
    if (lane == 0) {
      // A release reduction: the block's writes (ordered before it by
      // csync) are visible to whoever acquires the count, and no returned
      // value is waited for.
      uint32_t* mine = lines + blockIdx.x % kBarrierLines * 32;
      asm volatile("red.release.gpu.global.add.u32 [%0], 1;\n" ::"l"(mine) : "memory");
    }
    if (lane < kBarrierLines) {
      const uint32_t blocks = (gridDim.x - lane + kBarrierLines - 1) / kBarrierLines;
      const uint32_t* line = lines + lane * 32;
      uint32_t seen;
      SpinWatch w{watch};
      do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];\n" : "=r"(seen) : "l"(line) : "memory");
        w.tick();
      } while (seen < passes * blocks);
    }
    __syncwarp();
    if (lane == 0 && stamps) asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(stamps[9]));
  }
  csync();
}

// The barrier words go back to zero once every block has passed the last
// barrier (none is still reading them): the last block to leave clears them
// and counts the launch (kEpochWord).
__device__ __forceinline__ void leave_grid(uint32_t* lines) {
  csync();
  uint32_t* exits = lines + kBarrierLines * 32;
  if (threadIdx.x == 0 && atomicAdd(exits, 1u) == gridDim.x - 1) {
    for (int j = 0; j < kBarrierLines; ++j) lines[j * 32] = 0;
    *exits = 0;
    // Every block read it at its start. Epochs (the count + 1) skip 0, the
    // flag of words never written.
    lines[kEpochWord] = lines[kEpochWord] + 1 == 0xffffffffu ? 0u : lines[kEpochWord] + 1;
    __threadfence();
  }
}

// --- clusters (sm_90) ---

// A launch in clusters of c blocks (attr must outlive the launch).
inline void set_cluster_blocks(cudaLaunchConfig_t& cfg, cudaLaunchAttribute* attr, int c) {
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(c);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
}

// The address of `local` (this block's shared memory) in block `rank` of
// the cluster.
template <class P>
__device__ __forceinline__ P* peer(P* local, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint64_t out;
  asm volatile("mapa.u64 %0, %1, %2;\n" : "=l"(out) : "l"(local), "r"(rank));
  return reinterpret_cast<P*>(out);
#else
  return local;
#endif
}

// The compute threads of the cluster's blocks meet (the producer warps do
// not take part, so the hardware cluster barrier, which counts every
// thread, cannot serve). Each block has a slot per block of the cluster;
// lane r of warp 0 writes the phase into this block's slot in block r
// (release), then waits until block r has written it into this block's
// slot r (acquire). A slot per writer, not a counter: a block already at
// the next phase cannot stand in for one still on its way.
__device__ __forceinline__ void cluster_sync(uint32_t* seen, int rank, int C, uint32_t& phase) {
  csync();
  ++phase;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (threadIdx.x < C) {
    uint32_t* slot = peer(seen + rank, static_cast<int>(threadIdx.x));
    asm volatile("st.release.cluster.u32 [%0], %1;\n" ::"l"(slot), "r"(phase) : "memory");
    uint32_t got;
    SpinWatch w{true};
    do {
      asm volatile("ld.acquire.cluster.u32 %0, [%1];\n" : "=r"(got) : "l"(seen + threadIdx.x) : "memory");
      w.tick();
    } while (got < phase);
  }
  __syncwarp();
#endif
  csync();
}

struct Scratch {
  float rstd[kMaxDecodeRows];
  float warp_ss[kStageRegs][kWarps];       // each warp's sum of squares of its input pieces
  float old[kThreads];                     // kAdd: the residual values this block's outputs add to
  float part[kWarps][16][kMaxDecodeRows];  // each warp's sums: its tile's 16 rows by the input rows
  float rot_cs[kMaxDecodeRows][kMaxHd / 2], rot_sn[kMaxDecodeRows][kMaxHd / 2];  // per row, from the kernel's start
  alignas(16) uint16_t q[kMaxGroup * kMaxHd];  // the q heads in T (16-bit), rounded as the prepare kernel rounds them
  alignas(16) float score[kMaxGroup][kSubChunk];  // scores, then probabilities
  float m[kMaxGroup], l[kMaxGroup], corr[kMaxGroup];
  float merge_ml[2][kMaxGroup][kMergeBatch];  // a flagged merge's batch of chunk maxima and sums
  int ticket;
};

// D += A B on the tensor cores: A 16 x 16 (a0..a3), B 16 x 8 (b0, b1), D
// 16 x 8 in f32.
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                         uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

// D += A B with A 16 x 8 (a0, a1), B 8 x 8 (b0).
template <class T>
__device__ __forceinline__ void mma1688(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t b0) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(b0));
  } else {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(b0));
  }
}

// Where a thread's operands lie for one load of a GEMV op, from the op's
// shape alone: made before the grid barrier for an op's first load, so that
// the op goes from its staged input straight to its products.
struct RowsPlan {
  int first, count;  // the load's output rows
  int wa, wb, xv;    // element offsets of the lane's operands: weight rows g and g + 8 of its tile, input row g
  int c0, c1;        // its warp's 32-wide chunks of k
  int log_parts;     // warps per tile, log2
  bool active;       // its warp has a tile
};

__device__ __forceinline__ RowsPlan plan_rows(int k, bool dual, int first, int count, int rows) {
  // Powers of two throughout: an integer division is a subroutine call.
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, stride = padded(k);
  const int vrows = count * (dual ? 2 : 1), tiles = (vrows + 15) / 16;
  RowsPlan pl;
  pl.first = first;
  pl.count = count;
  pl.log_parts = max(0, kLogWarps - ceil_log2(max(tiles, 1)));
  const int tile = warp >> pl.log_parts, part = warp & ((1 << pl.log_parts) - 1), chunks = k / 32;
  pl.active = tile < tiles;
  pl.c0 = part * chunks >> pl.log_parts;
  pl.c1 = (part + 1) * chunks >> pl.log_parts;
  pl.wa = max(0, min(tile * 16 + g, vrows - 1)) * stride + 8 * t;
  pl.wb = max(0, min(tile * 16 + g + 8, vrows - 1)) * stride + 8 * t;
  pl.xv = min(g, rows - 1) * stride + 8 * t;
  return pl;
}

// The load's rows from weights ws (shared memory, padded rows; when dual
// the count gate rows, then the count up rows) against the input rows xs,
// on the tensor cores: the weight rows are cut into tiles of 16, each
// tile's k into parts, a warp per (tile, part) sums its part with m16n8k16
// products into sc.part (the input rows are B's 8 columns; padding columns
// repeat the last row and are dropped): gemv_products. After a block
// barrier, one thread per (row, input row) adds the parts in a fixed order
// and hands them to store(r, n, gate, up, valid): row r of the load, input
// row n (valid: the thread has that output): gemv_epilogue. Two functions,
// not one: the epilogue's closure then stays out of the products' code
// (measured: fewer spilled registers).
//
// A dot product does not care in which order its k are taken, as long as
// weights and input agree: lane (g, t) loads 8 contiguous k of its rows and
// of input row g, and feeds them to the two products of a 32-wide chunk as
// the k pairs the fragment layout gives it there. So every operand is one
// 16-byte load, no shuffles.
template <class T, int N>
__device__ __forceinline__ void gemv_products(const RowsPlan& pl, const T* ws, const T* xs, Scratch& sc,
                                              unsigned long long* stamps) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  fine_stamp(stamps, 15);
  if (pl.active) {
    const T* wa = ws + pl.wa;
    const T* wb = ws + pl.wb;
    const T* xv = xs + pl.xv;
    // Two accumulators: consecutive products into one wait for each other.
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
    for (int c = pl.c0; c < pl.c1; ++c) {
      const uint4 a = *reinterpret_cast<const uint4*>(wa + c * 32);
      const uint4 b = *reinterpret_cast<const uint4*>(wb + c * 32);
      const uint4 x = *reinterpret_cast<const uint4*>(xv + c * 32);
      mma16816<T>(d, a.x, b.x, a.y, b.y, x.x, x.y);
      mma16816<T>(e, a.z, b.z, a.w, b.w, x.z, x.w);
    }
#pragma unroll
    for (int q = 0; q < 4; ++q) d[q] += e[q];
    // d: (row g, input 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
    if (2 * t < N) {
      sc.part[warp][g][2 * t] = d[0];
      sc.part[warp][g + 8][2 * t] = d[2];
    }
    if (2 * t + 1 < N) {
      sc.part[warp][g][2 * t + 1] = d[1];
      sc.part[warp][g + 8][2 * t + 1] = d[3];
    }
  }
  fine_stamp(stamps, 10);
}

template <class T, int N, class Store>
__device__ __forceinline__ void gemv_epilogue(bool dual, const RowsPlan& pl, int rows, Scratch& sc,
                                              unsigned long long* stamps, Store store) {
  const int log_parts = pl.log_parts, parts = 1 << log_parts, count = pl.count;
  // With 1 or 2 input rows (all the parts then fit one pass of the
  // threads: vrows * parts <= 256), `parts` neighbouring lanes add up each
  // output's parts, a part each and a butterfly of shuffles, into the first
  // part's place. One thread adding all of them goes load, add, load, add:
  // the compiler, short of registers, gives the loads one register
  // (measured: 0.6 us from the products to the first output value in every
  // GEMV op at one row). With more rows the passes cost more than they
  // save (batch 8: -3%).
  constexpr bool kShuffled = N <= 2;
  static_assert(16 * kWarps * 2 <= kThreads, "one pass: vrows * parts <= 16 * kWarps, times 2 rows");
  if (kShuffled && log_parts > 0) {
    const int total = count * (dual ? 2 : 1) * N << log_parts;
    const int i = threadIdx.x, q = i & (parts - 1), rest = i >> log_parts;
    const int vr = rest / N, n = rest % N;
    float* at = &sc.part[((vr / 16) << log_parts) + q][vr % 16][n];
    float v = i < total ? *at : 0.0f;
    for (int off = parts / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (i < total && q == 0) *at = v;
    csync();
  }
  const auto sum = [&](int vr, int n) {
    const float* at = &sc.part[(vr / 16) << log_parts][vr % 16][n];
    if constexpr (kShuffled) return *at;
    float v = 0.0f;
    // Unrolled to kWarps with the tail predicated off.
#pragma unroll
    for (int q = 0; q < kWarps; ++q)
      if (q < parts) v += at[q * 16 * kMaxDecodeRows];
    return v;
  };
  // A thread per (row, input row), over N input rows (a power of two) so
  // that the split is a shift; rows past `rows` have no output.
  // Every thread calls store (a store may shuffle); `valid` says whether it has an output.
  static_assert(kMaxLoadRows * kMaxDecodeRows <= kThreads, "a thread per output of a load");
  const int r = threadIdx.x / N, n = threadIdx.x % N;
  const bool valid = r < count && n < rows;
  store(r, n, valid ? sum(r, n) : 0.0f, valid && dual ? sum(count + r, n) : 0.0f, valid);
  fine_stamp(stamps, 12);
}

// One load: its products, a block barrier, then epilogue() (gemv_epilogue
// with the caller's store; a caller may build that closure once per op).
template <class T, int N, class Epilogue>
__device__ __forceinline__ void gemv_load(const RowsPlan& pl, const T* ws, const T* xs, Scratch& sc,
                                          unsigned long long* stamps, Epilogue epilogue) {
  gemv_products<T, N>(pl, ws, xs, sc, stamps);
  csync();
  fine_stamp(stamps, 11);
  epilogue();
}

template <class T, int N, class Store>
__device__ __forceinline__ void gemv_rows(bool dual, const RowsPlan& pl, const T* ws, const T* xs, int rows,
                                          Scratch& sc, unsigned long long* stamps, Store store) {
  gemv_load<T, N>(pl, ws, xs, sc, stamps, [&] { gemv_epilogue<T, N>(dual, pl, rows, sc, stamps, store); });
}

// One load's positions: scores (a warp per 16 positions), the online
// softmax step (a warp per head), then P V (a thread per (head, element)).
// kv: the load's K rows (kv_rows of them, the first `cached` used), then its V rows.
template <class T>
__device__ __forceinline__ void attn_step(const DecodeProgram& p, const AttnItem& it, const T* kv, int count,
                                          int cached, int kv_rows, const T* fresh_k, const T* fresh_v, Scratch& sc,
                                          float (&acc)[kPasses], unsigned long long* stamps) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, hd = p.head_dim, group = it.group;
  const T* ks = kv;
  const T* vs = kv + kv_rows * hd;
  // Scores on the tensor cores: a warp per 16 positions, an m16n8k16 tile
  // with the positions as its rows and the q heads as its 8 columns, over
  // the head in chunks of 32, then 16, then 8 (as gemv_products: the lane's
  // contiguous elements feed the products in the same order for K and q).
  // A shuffle sum per (position, head) was a chain of dependent steps:
  // ~2.7 us for 64 positions.
  {
    const T* qs = reinterpret_cast<const T*>(sc.q);
    const int g = lane / 4, t = lane % 4;
    for (int tile = warp; tile * 16 < count; tile += kWarps) {
      const int ra = min(tile * 16 + g, count - 1), rb = min(tile * 16 + g + 8, count - 1);
      const T* ka = ra < cached ? ks + ra * hd : fresh_k;
      const T* kb = rb < cached ? ks + rb * hd : fresh_k;
      const T* qv = qs + min(g, group - 1) * hd;
      float d[4] = {0.0f, 0.0f, 0.0f, 0.0f}, e[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      int c = 0;
      for (; c + 32 <= hd; c += 32) {
        const uint4 a = *reinterpret_cast<const uint4*>(ka + c + 8 * t);
        const uint4 b = *reinterpret_cast<const uint4*>(kb + c + 8 * t);
        const uint4 x = *reinterpret_cast<const uint4*>(qv + c + 8 * t);
        mma16816<T>(d, a.x, b.x, a.y, b.y, x.x, x.y);
        mma16816<T>(e, a.z, b.z, a.w, b.w, x.z, x.w);
      }
      if (c + 16 <= hd) {
        const uint2 a = *reinterpret_cast<const uint2*>(ka + c + 4 * t);
        const uint2 b = *reinterpret_cast<const uint2*>(kb + c + 4 * t);
        const uint2 x = *reinterpret_cast<const uint2*>(qv + c + 4 * t);
        mma16816<T>(d, a.x, b.x, a.y, b.y, x.x, x.y);
        c += 16;
      }
      if (c < hd) {
        const uint32_t a = *reinterpret_cast<const uint32_t*>(ka + c + 2 * t);
        const uint32_t b = *reinterpret_cast<const uint32_t*>(kb + c + 2 * t);
        mma1688<T>(e, a, b, *reinterpret_cast<const uint32_t*>(qv + c + 2 * t));
      }
      // d: (position g, head 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1).
      const int p0 = tile * 16 + g, p1 = p0 + 8;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (2 * t + h >= group) break;
        if (p0 < count) sc.score[2 * t + h][p0] = (d[h] + e[h]) * p.scale;
        if (p1 < count) sc.score[2 * t + h][p1] = (d[2 + h] + e[2 + h]) * p.scale;
      }
    }
  }
  fine_stamp(stamps, 13);
  csync();
  if (warp < group) {
    const int g = warp;
    constexpr int kPer = kSubChunk / 32;
    float v[kPer], mx = -INFINITY, part = 0.0f;
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      v[u] = lane + 32 * u < count ? sc.score[g][lane + 32 * u] : -INFINITY;
      mx = fmaxf(mx, v[u]);
    }
    const float m_old = sc.m[g], m_new = fmaxf(m_old, warp_max(mx));
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      if (lane + 32 * u >= count) break;
      const float e = __expf(v[u] - m_new);
      sc.score[g][lane + 32 * u] = e;
      part += e;
    }
    const float sum = warp_sum(part);
    if (lane == 0) {
      const float corr = __expf(m_old - m_new);
      sc.corr[g] = corr;
      sc.l[g] = sc.l[g] * corr + sum;
      sc.m[g] = m_new;
    }
  }
  csync();
  fine_stamp(stamps, 14);
#pragma unroll
  for (int h = 0; h < kPasses; ++h) {
    const int t = threadIdx.x + h * kThreads, g = fast_div(t, it.by_hd), d = t - g * hd;
    if (g >= group) break;
    // Four sums (one chain of dependent adds would wait on each load in
    // turn), and four probabilities a load.
    const float* sg = sc.score[g];
    float a = acc[h] * sc.corr[g], b = 0.0f, c = 0.0f, e = 0.0f;
    int i = 0;
    for (; i + 3 < cached; i += 4) {
      const float4 s4 = *reinterpret_cast<const float4*>(sg + i);
      const T* v = vs + i * hd + d;
      a += s4.x * to_f(v[0]);
      b += s4.y * to_f(v[hd]);
      c += s4.z * to_f(v[2 * hd]);
      e += s4.w * to_f(v[3 * hd]);
    }
    for (; i < count; ++i) a += sg[i] * to_f(i < cached ? vs[i * hd + d] : fresh_v[d]);
    acc[h] = (a + b) + (c + e);
  }
}

}  // namespace nativelm::cuda::decode
