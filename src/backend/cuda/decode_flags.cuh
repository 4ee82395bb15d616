#pragma once
// Device side of a flagged decode program (decode_program.h,
// DecodeProgram::flags): an op's output as 8-byte words, two 16-bit values
// in the low half and the launch's epoch in the high half, each stored and
// loaded as one access (so a word is wholly this launch's or wholly
// older), at gpu scope (L2: L1 is not coherent). A reader polls the words
// it needs until all carry the epoch. Measured with bench_cuda_sync_latency
// on an H100 while every SM streams 32 KB of weights: a dependent round
// that polls 3,072 flagged values takes ~2.0 us; a grid barrier and a read
// of the same values as plain bf16, ~3.7 us.
#include <cstdint>

#include "backend/cuda/decode_device.cuh"

namespace nativelm::cuda::decode {

using Word = unsigned long long;

static_assert(kThreads == kDecodeComputeThreads, "decode_program.h sizes flagged staging by it");

__device__ __forceinline__ Word flag_word(uint32_t epoch, uint32_t payload) {
  return (static_cast<Word>(epoch) << 32) | payload;
}
__device__ __forceinline__ bool current(Word w, uint32_t epoch) { return static_cast<uint32_t>(w >> 32) == epoch; }

__device__ __forceinline__ void put_word(Word* at, Word w) {
  asm volatile("st.relaxed.gpu.global.u64 [%0], %1;\n" ::"l"(at), "l"(w) : "memory");
}
__device__ __forceinline__ Word get_word(const Word* at) {
  Word w;
  asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];\n" : "=l"(w) : "l"(at));
  return w;
}
// Two words at a 16-byte boundary (each one access).
__device__ __forceinline__ void get_words2(const Word* at, Word& a, Word& b) {
  asm volatile("ld.relaxed.gpu.global.v2.u64 {%0, %1}, [%2];\n" : "=l"(a), "=l"(b) : "l"(at));
}

// The 16 bits of a 16-bit value.
template <class T>
__device__ __forceinline__ uint32_t bits_of(T v) {
  static_assert(sizeof(T) == 2, "flagged values are 16-bit");
  return *reinterpret_cast<const uint16_t*>(&v);
}
template <class T>
__device__ __forceinline__ T from_bits(uint32_t b) {
  const uint16_t h = static_cast<uint16_t>(b);
  return *reinterpret_cast<const T*>(&h);
}

// A poll that found stale words waits ns before the next: polls hit the
// same few L2 lines from every block, and unpaced they were ~2 GB of L2
// reads per Qwen3-0.6B step (ncu), beside 1.2 GB of weights.
__device__ __forceinline__ void poll_pause(uint32_t ns) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  if (ns) __nanosleep(ns);
#endif
}

// Word `at`, once current.
__device__ __forceinline__ Word poll_word(const Word* at, uint32_t epoch, uint32_t ns) {
  SpinWatch w{true};
  Word x = get_word(at);
  while (!current(x, epoch)) {
    w.tick();
    poll_pause(ns);
    x = get_word(at);
  }
  return x;
}

// 16-byte pieces (8 values, 4 words) base + threadIdx.x + r * kThreads of
// a flagged vector, r < R and below `total`, into v[r]: all loads issued,
// then checked, the stale ones loaded again until every one is current.
template <int R>
__device__ __forceinline__ void poll_pieces(const Word* words, int base, int total, uint32_t epoch, uint32_t ns,
                                            uint4* v) {
  uint32_t pending = 0;
#pragma unroll
  for (int r = 0; r < R; ++r)
    if (base + static_cast<int>(threadIdx.x) + r * kThreads < total) pending |= 1u << r;
  SpinWatch watch{true};
  while (pending) {
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (pending >> r & 1) {
        const Word* at = words + 4 * (base + static_cast<int>(threadIdx.x) + r * kThreads);
        Word a, b, c, d;
        get_words2(at, a, b);
        get_words2(at + 2, c, d);
        if (current(a, epoch) && current(b, epoch) && current(c, epoch) && current(d, epoch)) {
          v[r] = make_uint4(static_cast<uint32_t>(a), static_cast<uint32_t>(b), static_cast<uint32_t>(c),
                            static_cast<uint32_t>(d));
          pending &= ~(1u << r);
        }
      }
    if (pending) {
      watch.tick();
      poll_pause(ns);
    }
  }
}

// A warp's words [0, count) of `at` into dst as 32-bit payloads (lane j
// takes words j, j + 32, ...; count <= 32 R), polled as poll_pieces does.
template <int R>
__device__ __forceinline__ void poll_lane_words(const Word* at, int count, uint32_t epoch, uint32_t ns, uint32_t* dst) {
  const int lane = threadIdx.x % 32;
  uint32_t pending = 0;
#pragma unroll
  for (int r = 0; r < R; ++r)
    if (lane + 32 * r < count) pending |= 1u << r;
  SpinWatch watch{true};
  while (pending) {
    Word w[R];
#pragma unroll
    for (int r = 0; r < R; ++r)
      if (pending >> r & 1) w[r] = get_word(at + lane + 32 * r);
#pragma unroll
    for (int r = 0; r < R; ++r)
      if ((pending >> r & 1) && current(w[r], epoch)) {
        dst[lane + 32 * r] = static_cast<uint32_t>(w[r]);
        pending &= ~(1u << r);
      }
    if (pending) {
      watch.tick();
      poll_pause(ns);
    }
  }
}

// Polls the n words at[c * stride] (c < n <= B), and `extra` unless null,
// until every one carries the epoch; all the loads of a round in flight
// together.
template <int B>
__device__ __forceinline__ void poll_column(const Word* at, int stride, int n, const Word* extra, Word (&w)[B], Word& x,
                                            uint32_t epoch, uint32_t poll_ns) {
  uint32_t pending = (1u << n) - 1;
  bool more = extra != nullptr;
  SpinWatch watch{true};
  for (;;) {
#pragma unroll
    for (int c = 0; c < B; ++c)
      if (pending >> c & 1) w[c] = get_word(at + c * stride);
    if (more) x = get_word(extra);
#pragma unroll
    for (int c = 0; c < B; ++c)
      if ((pending >> c & 1) && current(w[c], epoch)) pending &= ~(1u << c);
    if (more && current(x, epoch)) more = false;
    if (!pending && !more) return;
    watch.tick();
    poll_pause(poll_ns);
  }
}

// Output pairs: every thread of the warp calls this (it shuffles); a
// thread whose `pair` is even and `valid` stores its value and that of the
// thread `stride` lanes up (its pair + 1) as word `word`.
template <class T>
__device__ __forceinline__ void put_pair(Word* word, T value, int stride, bool valid, bool even, uint32_t epoch) {
  const uint32_t mine = bits_of(value), next = __shfl_down_sync(0xffffffffu, mine, stride);
  if (valid && even) put_word(word, flag_word(epoch, mine | next << 16));
}

}  // namespace nativelm::cuda::decode
