// CpuBackend::attention: writes this step's K/V rows into the paged pools,
// then causal grouped-query attention per sequence straight from the pages.
// Work is split into tasks of (sequence, kv head, block of queries); a task
// handles every query head that shares its kv head, so each cached K/V row is
// read once per task and reused from L1 for the whole group.
#include <algorithm>
#include <cstring>
#include <limits>
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

Shape check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& k_pool,
                      const Tensor& v_pool, const AttentionBatch& batch, int64_t head_dim,
                      const Tensor& out) {
  const char* op = "attention";
  check_matrix(q, op, "q");
  check_matrix(k, op, "k");
  Shape s{q.dim(0), 0, 0, head_dim, 0};
  if (head_dim <= 0 || q.dim(1) % head_dim != 0 || k.dim(1) % head_dim != 0)
    fail("attention: q ({}) and k ({}) columns must be whole heads of {}", q.dim(1), k.dim(1),
         head_dim);
  s.heads = q.dim(1) / head_dim;
  s.kv_heads = k.dim(1) / head_dim;
  if (s.kv_heads == 0 || s.heads % s.kv_heads != 0)
    fail("attention: {} query heads are not a multiple of {} kv heads", s.heads, s.kv_heads);
  check_shape(k, s.n, k.dim(1), op, "k");
  check_shape(v, s.n, k.dim(1), op, "v");
  check_shape(out, s.n, q.dim(1), op, "out");
  for (const Tensor* pool : {&k_pool, &v_pool}) {
    check_present(*pool, op, "a KV pool");
    if (pool->ndim != 2 || pool->dim(1) != k.dim(1) || pool->dtype != k_pool.dtype ||
        pool->dim(0) != k_pool.dim(0))
      fail("attention: the K and V pools must both be [slots, {}] of one dtype", k.dim(1));
  }
  s.pool_rows = k_pool.dim(0);
  if (out.data == k.data || out.data == v.data) fail("attention: out may not alias k or v");
  if (static_cast<int64_t>(batch.slots.size()) != s.n)
    fail("attention: {} slots for {} rows", batch.slots.size(), s.n);
  for (int32_t slot : batch.slots) {
    if (slot < 0 || slot >= s.pool_rows)
      fail("attention: slot {} is outside the pool of {} slots", slot, s.pool_rows);
  }
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

struct Task {
  int32_t seq, kv_head;
  int64_t q0, q1;  // query rows of the sequence, relative to q_begin
};

struct Context {
  const Kernels& kern;
  const Shape& s;
  const Tensor &q, &k_pool, &v_pool;
  const AttentionBatch& batch;
  const std::vector<std::vector<int32_t>>& slots;
  float scale;
  Tensor& out;
};

// One query head of one query row: scores, softmax, weighted sum of V.
void attend_one(const Context& c, const float* qh, const int32_t* slots, int64_t visible,
                int64_t kv_head, std::vector<float>& scores, float* dst) {
  const int64_t hd = c.s.head_dim, width = c.s.kv_heads * hd;
  const size_t esize = dtype_size(c.k_pool.dtype);
  const char* kbase = static_cast<const char*>(c.k_pool.data) + kv_head * hd * esize;
  const char* vbase = static_cast<const char*>(c.v_pool.data) + kv_head * hd * esize;
  float max = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < visible; ++p) {
    scores[p] = c.kern.dot(qh, kbase + slots[p] * width * esize, c.k_pool.dtype, hd) * c.scale;
    max = std::max(max, scores[p]);
  }
  const float inv = 1.0f / c.kern.exp_sum(scores.data(), visible, max);
  std::fill(dst, dst + hd, 0.0f);
  for (int64_t p = 0; p < visible; ++p)
    c.kern.axpy(scores[p] * inv, vbase + slots[p] * width * esize, c.v_pool.dtype, dst, hd);
}

void run_task(const Context& c, const Task& t) {
  const AttentionSeq& seq = c.batch.seqs[t.seq];
  const int64_t hd = c.s.head_dim, group = c.s.heads / c.s.kv_heads;
  thread_local std::vector<float> scores, qcopy;
  scores.resize(static_cast<size_t>(std::max<int64_t>(seq.kv_len, 1)));
  qcopy.resize(static_cast<size_t>(group * hd));
  for (int64_t i = t.q0; i < t.q1; ++i) {
    const int64_t row = seq.q_begin + i;
    const int64_t visible = seq.kv_len - seq.q_len + i + 1;
    const int64_t col = t.kv_head * group * hd;
    // Copied first so that out may alias q.
    std::memcpy(qcopy.data(), c.q.as<const float>() + row * c.q.dim(1) + col,
                qcopy.size() * sizeof(float));
    for (int64_t g = 0; g < group; ++g) {
      attend_one(c, qcopy.data() + g * hd, c.slots[t.seq].data(), visible, t.kv_head, scores,
                 c.out.as<float>() + row * c.out.dim(1) + col + g * hd);
    }
  }
}

}  // namespace

void CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, Tensor& k_pool,
                           Tensor& v_pool, const AttentionBatch& batch, int64_t head_dim,
                           float scale, Tensor& out) {
  const Shape s = check_attention(q, k, v, k_pool, v_pool, batch, head_dim, out);
  std::vector<std::vector<int32_t>> slots;
  std::vector<Task> tasks;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const AttentionSeq& seq = batch.seqs[i];
    slots.push_back(seq_slots(seq, batch, s));
    for (int64_t h = 0; h < s.kv_heads; ++h) {
      for (int64_t q0 = 0; q0 < seq.q_len; q0 += kQueryBlock)
        tasks.push_back({static_cast<int32_t>(i), static_cast<int32_t>(h), q0,
                         std::min<int64_t>(q0 + kQueryBlock, seq.q_len)});
    }
  }
  const int64_t width = k.dim(1);
  ThreadPool& pool = ThreadPool::global();
  pool.parallel_for(s.n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      store_row(k.as<const float>() + i * width, k_pool.data, k_pool.dtype, batch.slots[i], width);
      store_row(v.as<const float>() + i * width, v_pool.data, v_pool.dtype, batch.slots[i], width);
    }
  });
  const Context ctx{*kernels_, s, q, k_pool, v_pool, batch, slots, scale, out};
  pool.parallel_for(static_cast<int64_t>(tasks.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) run_task(ctx, tasks[t]);
  });
}

}  // namespace nativelm
