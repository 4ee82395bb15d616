// CpuBackend::attention: writes this step's K/V rows into the paged pools,
// then causal grouped-query attention per sequence straight from the pages.
// Each kv head's cached K/V are converted once to f32 blocks (kernels.h:
// pack_kv) and then every query head sharing that kv head attends to them
// together, as small matrix products.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace nativelm {

using namespace cpu;

namespace {

constexpr int64_t kQueryBlock = 16;

struct Shape {
  int64_t n, heads, kv_heads, head_dim, pool_rows;
};

Shape check_attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                      const AttentionBatch& batch, int64_t head_dim, const Tensor& out) {
  const char* op = "attention";
  check_matrix(q, op, "q");
  Shape s{q.dim(0), 0, 0, head_dim, 0};
  for (const Tensor* pool : {&k_pool, &v_pool}) {
    check_present(*pool, op, "a KV pool");
    if (pool->ndim != 2 || pool->dim(1) != k_pool.dim(1) || pool->dtype != k_pool.dtype ||
        pool->dim(0) != k_pool.dim(0))
      fail("attention: the K and V pools must both be [slots, kv_dim] of one dtype");
  }
  const int64_t kv_dim = k_pool.dim(1);
  if (head_dim <= 0 || q.dim(1) % head_dim != 0 || kv_dim % head_dim != 0)
    fail("attention: q ({}) and kv ({}) columns must be whole heads of {}", q.dim(1), kv_dim,
         head_dim);
  s.heads = q.dim(1) / head_dim;
  s.kv_heads = kv_dim / head_dim;
  if (s.kv_heads == 0 || s.heads % s.kv_heads != 0)
    fail("attention: {} query heads are not a multiple of {} kv heads", s.heads, s.kv_heads);
  check_shape(out, s.n, q.dim(1), op, "out");
  s.pool_rows = k_pool.dim(0);
  return s;
}

// The pool slot of every cached position of one sequence, checked.
std::vector<int32_t> seq_slots(const AttentionSeq& seq, const AttentionBatch& batch,
                               const Shape& s) {
  if (seq.q_len < 0 || seq.q_begin < 0 || seq.q_begin + seq.q_len > s.n)
    fail("attention: sequence rows [{}, {}) fall outside the {} batch rows", seq.q_begin,
         seq.q_begin + seq.q_len, s.n);
  if (seq.kv_len < seq.q_len)
    fail("attention: kv_len {} is smaller than q_len {}", seq.kv_len, seq.q_len);
  if (seq.kv_len > 0 && (!seq.pages || batch.page_size <= 0))
    fail("attention: a sequence with cached positions needs pages and a page size");
  std::vector<int32_t> slots(static_cast<size_t>(seq.kv_len));
  for (int32_t p = 0; p < seq.kv_len; ++p) {
    const int64_t slot = static_cast<int64_t>(seq.pages[p / batch.page_size]) * batch.page_size +
                         p % batch.page_size;
    if (seq.pages[p / batch.page_size] < 0 || slot >= s.pool_rows)
      fail("attention: page {} is outside the pool of {} slots", seq.pages[p / batch.page_size],
           s.pool_rows);
    slots[p] = static_cast<int32_t>(slot);
  }
  return slots;
}

void store_row(const float* src, void* pool, DType dt, int64_t slot, int64_t width) {
  switch (dt) {
    case DType::F32:
      std::memcpy(static_cast<float*>(pool) + slot * width, src, static_cast<size_t>(width) * 4);
      return;
    case DType::BF16: {
      uint16_t* dst = static_cast<uint16_t*>(pool) + slot * width;
      for (int64_t j = 0; j < width; ++j) dst[j] = f32_to_bf16(src[j]);
      return;
    }
    case DType::F16: {
      uint16_t* dst = static_cast<uint16_t*>(pool) + slot * width;
      for (int64_t j = 0; j < width; ++j) dst[j] = f32_to_f16(src[j]);
      return;
    }
  }
}

// Sequences with at most this many query rows (decode) are one task per kv
// head; longer ones (prefill) split their queries over the threads.
constexpr int64_t kShortQueries = 4;

struct Context {
  const Kernels& kern;
  const Shape& s;
  const Tensor &q, &k_pool, &v_pool;
  const AttentionBatch& batch;
  float scale;
  Tensor& out;
};

// Per-thread buffers, grown on demand and kept between calls.
struct Buffers {
  std::vector<float> scratch;
  std::vector<const float*> q;
  std::vector<float*> out;
  std::vector<int64_t> visible;
};

AttnSource source(const Context& c, const std::vector<int32_t>& slots, int64_t kv_len,
                  int64_t kv_head) {
  const int64_t es = static_cast<int64_t>(dtype_size(c.k_pool.dtype));
  const int64_t offset = kv_head * c.s.head_dim * es;
  return {static_cast<const char*>(c.k_pool.data) + offset,
          static_cast<const char*>(c.v_pool.data) + offset,
          c.k_pool.dtype,
          c.k_pool.dim(1) * es,
          slots.data(),
          kv_len,
          c.s.head_dim};
}

size_t packed_floats(const Context& c, int64_t kv_len) {
  const int64_t block = c.kern.attn_block;
  return static_cast<size_t>(((kv_len + block - 1) / block * block + block) * c.s.head_dim);
}

// Attends query rows [i0, i1) of sequence `seq`, every query head of kv_head,
// against kt / vf already packed for the sequence, or straight from src when
// kt is null.
void attend_rows(const Context& c, const AttentionSeq& seq, int64_t kv_head, int64_t i0, int64_t i1,
                 const float* kt, const float* vf, Buffers& b, const AttnSource& src) {
  const int64_t hd = c.s.head_dim, group = c.s.heads / c.s.kv_heads;
  b.q.clear();
  b.out.clear();
  b.visible.clear();
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t row = seq.q_begin + i;
    for (int64_t g = 0; g < group; ++g) {
      const int64_t col = (kv_head * group + g) * hd;
      b.q.push_back(c.q.as<const float>() + row * c.q.dim(1) + col);
      b.out.push_back(c.out.as<float>() + row * c.out.dim(1) + col);
      b.visible.push_back(seq.kv_len - seq.q_len + i + 1);
    }
  }
  b.scratch.resize(static_cast<size_t>(c.kern.attn_scratch_floats(seq.kv_len, hd)));
  const AttnQueries qs{static_cast<int64_t>(b.q.size()), b.q.data(), b.out.data(), b.visible.data(),
                       c.scale};
  if (kt) {
    c.kern.attend(qs, kt, vf, hd, b.scratch.data());
  } else {
    c.kern.attend_direct(src, qs, b.scratch.data());
  }
}

Buffers& thread_buffers() {
  thread_local Buffers buffers;
  return buffers;
}

// Decode-sized sequences: each (sequence, kv head) attends alone, reading the
// pools directly.
void run_short(const Context& c, const std::vector<int32_t>& seq_ids,
               const std::vector<std::vector<int32_t>>& slots) {
  const int64_t tasks = static_cast<int64_t>(seq_ids.size()) * c.s.kv_heads;
  ThreadPool::global().parallel_for(tasks, 1, [&](int64_t begin, int64_t end) {
    Buffers& b = thread_buffers();
    for (int64_t t = begin; t < end; ++t) {
      const int32_t id = seq_ids[t / c.s.kv_heads];
      const int64_t kv_head = t % c.s.kv_heads;
      const AttentionSeq& seq = c.batch.seqs[id];
      attend_rows(c, seq, kv_head, 0, seq.q_len, nullptr, nullptr, b,
                  source(c, slots[id], seq.kv_len, kv_head));
    }
  });
}

// Causal query blocks cost more the later they come, so the threads' even
// shares of [0, n) map to blocks taken from both ends in turn: 0, n-1, 1,
// n-2, ... gives every contiguous range about the same work.
int64_t balanced_order(int64_t j, int64_t n) { return j % 2 == 0 ? j / 2 : n - 1 - j / 2; }

// A prefill-sized sequence: per kv head, pack K/V in parallel by position
// blocks, then attend in parallel by query blocks.
void run_long(const Context& c, const AttentionSeq& seq, const std::vector<int32_t>& slots) {
  ThreadPool& pool = ThreadPool::global();
  const int64_t block = c.kern.attn_block, group = c.s.heads / c.s.kv_heads;
  const int64_t padded = (seq.kv_len + block - 1) / block * block;
  const int64_t qblock = std::max<int64_t>(1, c.kern.attn_rows / group);
  std::vector<float> kt(packed_floats(c, seq.kv_len)), vf(kt.size());
  for (int64_t h = 0; h < c.s.kv_heads; ++h) {
    const AttnSource src = source(c, slots, seq.kv_len, h);
    pool.parallel_for(padded / block, 4, [&](int64_t b0, int64_t b1) {
      c.kern.pack_kv(src, b0 * block, b1 * block, kt.data(), vf.data());
    });
    const int64_t qblocks = (seq.q_len + qblock - 1) / qblock;
    pool.parallel_for(qblocks, 1, [&](int64_t b0, int64_t b1) {
      Buffers& b = thread_buffers();
      for (int64_t j = b0; j < b1; ++j) {
        const int64_t qb = balanced_order(j, qblocks);
        attend_rows(c, seq, h, qb * qblock, std::min<int64_t>((qb + 1) * qblock, seq.q_len),
                    kt.data(), vf.data(), b, src);
      }
    });
  }
}

}  // namespace

void CpuBackend::write_kv(const Tensor& k, const Tensor& v, std::span<const int32_t> slots,
                          Tensor& k_pool, Tensor& v_pool) {
  const char* op = "write_kv";
  check_matrix(k, op, "k");
  const int64_t n = k.dim(0), width = k.dim(1);
  check_shape(v, n, width, op, "v");
  for (const Tensor* pool : {&k_pool, &v_pool}) {
    check_present(*pool, op, "a KV pool");
    if (pool->ndim != 2 || pool->dim(1) != width || pool->dim(0) != k_pool.dim(0))
      fail("write_kv: the K and V pools must both be [slots, {}]", width);
  }
  if (static_cast<int64_t>(slots.size()) != n) fail("write_kv: {} slots for {} rows", slots.size(), n);
  for (int32_t slot : slots)
    if (slot < 0 || slot >= k_pool.dim(0))
      fail("write_kv: slot {} is outside the pool of {} slots", slot, k_pool.dim(0));
  ThreadPool::global().parallel_for(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      store_row(k.as<const float>() + i * width, k_pool.data, k_pool.dtype, slots[i], width);
      store_row(v.as<const float>() + i * width, v_pool.data, v_pool.dtype, slots[i], width);
    }
  });
}

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_pool,
                           Tensor& v_pool, const AttentionBatch& batch, int64_t head_dim,
                           float scale, Tensor& out) {
  if (out.data == k.data || out.data == v.data) fail("attention: out may not alias k or v");
  write_kv(k, v, batch.slots, k_pool, v_pool);
  attention(q, k_pool, v_pool, batch, head_dim, scale, out);
}

void CpuBackend::attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                           const AttentionBatch& batch, int64_t head_dim, float scale,
                           Tensor& out) {
  const Shape s = check_attention(q, k_pool, v_pool, batch, head_dim, out);
  std::vector<std::vector<int32_t>> slots;
  for (const AttentionSeq& seq : batch.seqs) slots.push_back(seq_slots(seq, batch, s));
  const Context ctx{*kernels_, s, q, k_pool, v_pool, batch, scale, out};
  std::vector<int32_t> short_seqs;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const AttentionSeq& seq = batch.seqs[i];
    if (seq.q_len == 0) continue;
    if (seq.q_len <= kShortQueries) {
      short_seqs.push_back(static_cast<int32_t>(i));
    } else {
      run_long(ctx, seq, slots[i]);
    }
  }
  if (!short_seqs.empty()) run_short(ctx, short_seqs, slots);
}

}  // namespace nativelm
