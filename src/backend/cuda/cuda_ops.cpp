// CudaBackend's ops: shape checks on the host, then one launcher each.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "backend/checks.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/decode_program.h"
#include "backend/cuda/gemm.h"
#include "util/error.h"
#include "util/log.h"

namespace nativelm {

using cuda::check_cuda;

namespace {

int as_int(int64_t v) { return static_cast<int>(v); }

}  // namespace

void CudaBackend::embedding(const Tensor& table, std::span<const int32_t> ids, Tensor& out) {
  flush_decode();
  check_2d(table, "embedding", "table");
  check_dims(out, static_cast<int64_t>(ids.size()), table.dim(1), "embedding", "out");
  if (table.dtype != out.dtype) fail("embedding: table and out differ in dtype");
  const Staged& s = staged({.tokens = ids});
  cuda::gather(ty(out.dtype), table.data, s.tokens, as_int(ids.size()), as_int(table.dim(1)), out.data, stream_);
}

void CudaBackend::gather_rows(const Tensor& x, std::span<const int32_t> rows, Tensor& out) {
  flush_decode();
  check_2d(x, "gather_rows", "x");
  check_dims(out, static_cast<int64_t>(rows.size()), x.dim(1), "gather_rows", "out");
  const Staged& s = staged({.logit_rows = rows});
  cuda::gather(ty(x.dtype), x.data, s.logit_rows, as_int(rows.size()), as_int(x.dim(1)), out.data, stream_);
}

void CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  flush_decode();
  check_2d(x, "rms_norm", "x");
  check_dims(out, x.dim(0), x.dim(1), "rms_norm", "out");
  if (weight.numel() != x.dim(1)) fail("rms_norm: weight has {} entries for {} columns", weight.numel(), x.dim(1));
  if (x.dim(1) > cuda::max_norm_width()) fail("rms_norm: rows of {} exceed {}", x.dim(1), cuda::max_norm_width());
  cuda::rms_norm(ty(x.dtype), x.data, weight.data, eps, as_int(x.dim(0)), as_int(x.dim(1)), out.data, stream_);
}

void CudaBackend::add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  flush_decode();
  check_2d(residual, "add_rms_norm", "residual");
  check_dims(x, residual.dim(0), residual.dim(1), "add_rms_norm", "x");
  check_dims(out, residual.dim(0), residual.dim(1), "add_rms_norm", "out");
  if (weight.numel() != x.dim(1)) fail("add_rms_norm: weight has {} entries for {} columns", weight.numel(), x.dim(1));
  if (x.dim(1) > cuda::max_norm_width()) fail("add_rms_norm: rows of {} exceed {}", x.dim(1), cuda::max_norm_width());
  cuda::add_rms_norm(ty(x.dtype), residual.data, x.data, weight.data, eps, as_int(x.dim(0)), as_int(x.dim(1)),
                     out.data, stream_);
}

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  flush_decode();
  check_2d(x, "linear", "x");
  check_2d(w, "linear", "w");
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  if (w.dim(1) != k) fail("linear: x has {} columns but w is [{}, {}]", k, m, w.dim(1));
  check_dims(out, n, m, "linear", "out");
  if (x.dtype != w.dtype || (out.dtype != x.dtype && out.dtype != DType::F32))
    fail("linear: x ({}), w ({}) and out ({}) dtypes do not fit", dtype_name(x.dtype), dtype_name(w.dtype),
         dtype_name(out.dtype));
  if (bias && bias->numel() != m) fail("linear: bias has {} entries for {} outputs", bias->numel(), m);
  if (n == 0) return;
  if (n <= gemv_max_rows_) {
    cuda::gemv(ty(x.dtype), x.data, w.data, bias ? bias->data : nullptr, as_int(n), as_int(m), as_int(k), out.data,
               ty(out.dtype), stream_);
    return;
  }
  gemm_->run(ty(x.dtype), x.data, w.data, as_int(n), as_int(m), as_int(k), out.data, ty(out.dtype));
  if (bias) cuda::add_bias(ty(x.dtype), bias->data, as_int(n), as_int(m), out.data, ty(out.dtype), stream_);
}

void CudaBackend::qkv_prepare(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                              const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                              std::span<const float> inv_freq, std::span<const int32_t> slots, Tensor& k_pool,
                              Tensor& v_pool, Tensor& q_out) {
  flush_decode();
  check_qkv(qkv, layout, q_norm, k_norm, positions, inv_freq, slots, k_pool, v_pool, q_out);
  const Staged* s = &step_;
  if (!in_step_ || positions.data() != step_.positions_h || slots.data() != step_.slots_h) {
    AttentionBatch only_slots;
    only_slots.slots.assign(slots.begin(), slots.end());
    s = &staged({.positions = positions, .attention = &only_slots});
  }
  cuda::qkv_prepare(ty(qkv.dtype), qkv_args(qkv, layout, q_norm, k_norm, eps, inv_freq, *s, k_pool, v_pool, q_out),
                    stream_);
}

void CudaBackend::check_qkv(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm, const Tensor* k_norm,
                            std::span<const int32_t> positions, std::span<const float> inv_freq,
                            std::span<const int32_t> slots, const Tensor& k_pool, const Tensor& v_pool,
                            const Tensor& q_out) const {
  check_2d(qkv, "qkv_prepare", "qkv");
  const int64_t n = qkv.dim(0), hd = layout.head_dim;
  if (hd <= 0 || hd % 2 != 0 || qkv.dim(1) != layout.width())
    fail("qkv_prepare: qkv has {} columns, the layout needs {}", qkv.dim(1), layout.width());
  check_dims(q_out, n, layout.heads * hd, "qkv_prepare", "q_out");
  check_2d(k_pool, "qkv_prepare", "k_pool");
  check_dims(v_pool, k_pool.dim(0), layout.kv_heads * hd, "qkv_prepare", "v_pool");
  if (k_pool.dim(1) != layout.kv_heads * hd || k_pool.dtype != qkv.dtype || v_pool.dtype != qkv.dtype)
    fail("qkv_prepare: the pools must be [slots, {}] of {}", layout.kv_heads * hd, dtype_name(qkv.dtype));
  if (static_cast<int64_t>(positions.size()) != n || static_cast<int64_t>(slots.size()) != n)
    fail("qkv_prepare: {} positions and {} slots for {} rows", positions.size(), slots.size(), n);
  if (static_cast<int64_t>(inv_freq.size()) != hd / 2) fail("qkv_prepare: inv_freq must have head_dim / 2 entries");
  if (hd > 256) fail("qkv_prepare: head_dim {} is above the 256 this backend supports", hd);
  if ((q_norm == nullptr) != (k_norm == nullptr)) fail("qkv_prepare: q_norm and k_norm go together");
  // Inside a step ModelRunner made the slots; one-off calls are checked.
  if (!in_step_ || slots.data() != step_.slots_h)
    for (int32_t s : slots)
      if (s < 0 || s >= k_pool.dim(0)) fail("qkv_prepare: slot {} is outside the pool of {} slots", s, k_pool.dim(0));
}

cuda::QkvArgs CudaBackend::qkv_args(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                                    const Tensor* k_norm, float eps, std::span<const float> inv_freq,
                                    const Staged& s, Tensor& k_pool, Tensor& v_pool, Tensor& q_out) {
  return cuda::QkvArgs{qkv.data, q_norm ? q_norm->data : nullptr, k_norm ? k_norm->data : nullptr, eps,
                       s.positions, device_floats(inv_freq), s.slots, k_pool.data, v_pool.data, q_out.data,
                       as_int(qkv.dim(0)), as_int(layout.heads), as_int(layout.kv_heads), as_int(layout.head_dim)};
}

void CudaBackend::attention(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool, const AttentionBatch& batch,
                            int64_t head_dim, float scale, Tensor& out) {
  flush_decode();
  cuda::attention(ty(q.dtype), attention_args(q, k_pool, v_pool, batch, head_dim, scale, out, {}), stream_);
}

// A decode step (every sequence adds one token) joins the decode program
// when it can; else, on the lanes kernel, runs the prepare inside attention:
// one launch and one round trip through q less.
void CudaBackend::prepare_attention(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                                    const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                                    std::span<const float> inv_freq, const AttentionBatch& batch, float scale,
                                    Tensor& k_pool, Tensor& v_pool, Tensor& q, Tensor& out) {
  const bool decode = std::all_of(batch.seqs.begin(), batch.seqs.end(), [](const AttentionSeq& s) { return s.q_len == 1; });
  if (decode) {
    check_qkv(qkv, layout, q_norm, k_norm, positions, inv_freq, batch.slots, k_pool, v_pool, q);
    check_dims(out, qkv.dim(0), layout.heads * layout.head_dim, "attention", "out");
    if (fuse_attention(qkv, layout, q_norm, k_norm, eps, positions, inv_freq, batch, scale, k_pool, v_pool, out)) return;
  }
  if (!decode || !cuda::attention_fuses_prepare(ty(qkv.dtype), as_int(layout.heads), as_int(layout.kv_heads),
                                                as_int(layout.head_dim))) {
    Backend::prepare_attention(qkv, layout, q_norm, k_norm, eps, positions, inv_freq, batch, scale, k_pool, v_pool,
                               q, out);
    return;
  }
  const Staged* s = nullptr;
  cuda::AttentionArgs a = attention_args(q, k_pool, v_pool, batch, layout.head_dim, scale, out, positions, &s);
  a.prep = qkv_args(qkv, layout, q_norm, k_norm, eps, inv_freq, *s, k_pool, v_pool, q);
  cuda::attention(ty(qkv.dtype), a, stream_);
}

cuda::AttentionArgs CudaBackend::attention_args(const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
                                                const AttentionBatch& batch, int64_t head_dim, float scale,
                                                Tensor& out, std::span<const int32_t> positions,
                                                const Staged** used) {
  check_2d(q, "attention", "q");
  check_2d(k_pool, "attention", "k_pool");
  const int64_t n = q.dim(0), kv_dim = k_pool.dim(1);
  if (head_dim <= 0 || head_dim > 256 || q.dim(1) % head_dim != 0 || kv_dim % head_dim != 0)
    fail("attention: q ({}) and kv ({}) columns must be whole heads of {} (at most 256)", q.dim(1), kv_dim, head_dim);
  const int64_t heads = q.dim(1) / head_dim, kv_heads = kv_dim / head_dim;
  if (heads % kv_heads != 0) fail("attention: {} query heads are not a multiple of {} kv heads", heads, kv_heads);
  check_dims(v_pool, k_pool.dim(0), kv_dim, "attention", "v_pool");
  check_dims(out, n, q.dim(1), "attention", "out");
  if (static_cast<int64_t>(batch.slots.size()) != n) fail("attention: {} slots for {} rows", batch.slots.size(), n);
  if (batch.page_size <= 0) fail("attention: page size {}", batch.page_size);
  const bool staged_now = in_step_ && &batch == step_.attention &&
                          (positions.empty() || positions.data() == step_.positions_h);
  if (!staged_now) {
    int64_t covered = 0;
    for (const AttentionSeq& s : batch.seqs) {
      covered += s.q_len;
      for (int32_t p = 0; p < (s.kv_len + batch.page_size - 1) / batch.page_size; ++p)
        if (s.pages[p] < 0 || (int64_t{s.pages[p]} + 1) * batch.page_size > k_pool.dim(0))
          fail("attention: page {} is outside the pool of {} slots", s.pages[p], k_pool.dim(0));
    }
    if (covered != n) fail("attention: the sequences cover {} of {} rows", covered, n);
  }
  const Staged& s = staged({.positions = positions, .attention = &batch});
  if (used) *used = &s;
  // Enough blocks to fill the GPU twice over; depends only on the row count,
  // so a recorded decode step keeps its launch shape.
  const int hpb = cuda::attention_heads_per_block(as_int(heads), as_int(kv_heads));
  const int64_t blocks = n * (heads / hpb);
  const int splits = static_cast<int>(std::clamp<int64_t>((2 * sm_count_ + blocks - 1) / blocks, 1, 32));
  float* partial = nullptr;
  int* counters = nullptr;
  if (splits > 1) {
    partial = static_cast<float*>(grown(attn_scratch_, attn_scratch_bytes_,
                                       static_cast<size_t>(n * heads * splits * (head_dim + 2)) * sizeof(float),
                                       "attention scratch"));
    counters = static_cast<int*>(grown(attn_counters_, attn_counters_bytes_,
                                       static_cast<size_t>(n * heads) * sizeof(int), "attention counters"));
  }
  return cuda::AttentionArgs{q.data, k_pool.data, v_pool.data, out.data, s.row_seq, s.seqs, s.pages, partial,
                             counters, as_int(n), as_int(heads), as_int(kv_heads), as_int(head_dim), s.page_size,
                             splits, scale, s.tiles,
                             cuda::prefill_tiles_apply(ty(q.dtype), as_int(head_dim)) ? s.num_tiles : 0};
}

void CudaBackend::silu_mul(const Tensor& gate_up, Tensor& out) {
  flush_decode();
  check_2d(gate_up, "silu_mul", "gate_up");
  if (gate_up.dim(1) % 2 != 0) fail("silu_mul: gate_up has an odd number of columns");
  check_dims(out, gate_up.dim(0), gate_up.dim(1) / 2, "silu_mul", "out");
  cuda::silu_mul(ty(out.dtype), gate_up.data, as_int(gate_up.dim(0)), as_int(gate_up.dim(1) / 2), out.data, stream_);
}

void CudaBackend::add(Tensor& residual, const Tensor& x) {
  flush_decode();
  check_2d(residual, "add", "residual");
  check_dims(x, residual.dim(0), residual.dim(1), "add", "x");
  cuda::add(ty(residual.dtype), residual.data, x.data, residual.numel(), stream_);
}

// The fused seams: in one GEMV pass for decode-sized batches; larger ones
// take the two-step defaults, except that cuBLASLt adds into the residual
// itself (beta = 1).
void CudaBackend::norm_linear(const Tensor& x, const Tensor& norm, float eps, const Tensor& w, const Tensor* bias,
                              Tensor& normed, Tensor& out) {
  check_2d(x, "norm_linear", "x");
  check_2d(w, "norm_linear", "w");
  const int64_t n = x.dim(0), k = x.dim(1);
  // f32 out (the LM head's logits) for 4 or more rows: the last op of a
  // decode program, on the tensor cores. Measured on an H100 (Qwen3-0.6B,
  // 2026-11-23): batch 8 +8.6% against the GEMV kernel after the program;
  // batch 1 -1% and batch 2 -2.6% (the program streams the 311 MB head at
  // ~2.8 TB/s, the GEMV kernel at ~3.05). Else the two steps.
  const bool shapes = w.dim(1) == k && w.dtype == x.dtype && norm.numel() == k;
  if (out.dtype == DType::F32 && n >= 4 && !bias && shapes && out.dim(0) == n && out.dim(1) == w.dim(0) &&
      fuse_gemv(cuda::kOpGemvNormHead, x, &norm, eps, w, nullptr, w.dim(0), out))
    return;
  if (out.dtype != x.dtype) {
    Backend::norm_linear(x, norm, eps, w, bias, normed, out);
    return;
  }
  if (!shapes)
    fail("norm_linear: x [{}, {}] does not fit w [{}, {}] and a norm of {}", n, k, w.dim(0), w.dim(1), norm.numel());
  check_dims(out, n, w.dim(0), "norm_linear", "out");
  if (bias && bias->numel() != w.dim(0)) fail("norm_linear: bias has {} entries for {} outputs", bias->numel(), w.dim(0));
  if (fuse_gemv(cuda::kOpGemvNorm, x, &norm, eps, w, bias, w.dim(0), out)) return;
  if (n > gemv_max_rows_) {
    Backend::norm_linear(x, norm, eps, w, bias, normed, out);
    return;
  }
  cuda::gemv_norm(ty(x.dtype), x.data, norm.data, eps, w.data, bias ? bias->data : nullptr, as_int(n),
                  as_int(w.dim(0)), as_int(k), out.data, false, stream_);
}

void CudaBackend::norm_linear_swiglu(const Tensor& x, const Tensor& norm, float eps, const Tensor& w,
                                     const Tensor* bias, Tensor& normed, Tensor& gate_up, Tensor& out) {
  check_2d(x, "norm_linear_swiglu", "x");
  check_2d(w, "norm_linear_swiglu", "w");
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0) / 2;
  if (out.dtype != x.dtype) {
    Backend::norm_linear_swiglu(x, norm, eps, w, bias, normed, gate_up, out);
    return;
  }
  if (w.dim(0) % 2 != 0 || w.dim(1) != k || w.dtype != x.dtype || norm.numel() != k)
    fail("norm_linear_swiglu: x [{}, {}] does not fit the stacked w [{}, {}]", n, k, w.dim(0), w.dim(1));
  check_dims(out, n, m, "norm_linear_swiglu", "out");
  if (bias && bias->numel() != 2 * m) fail("norm_linear_swiglu: bias has {} entries for {} outputs", bias->numel(), 2 * m);
  if (fuse_gemv(cuda::kOpGemvNormSwiglu, x, &norm, eps, w, bias, m, out)) return;
  if (n > gemv_max_rows_) {
    Backend::norm_linear_swiglu(x, norm, eps, w, bias, normed, gate_up, out);
    return;
  }
  cuda::gemv_norm(ty(x.dtype), x.data, norm.data, eps, w.data, bias ? bias->data : nullptr, as_int(n), as_int(m),
                  as_int(k), out.data, true, stream_);
}

void CudaBackend::linear_add(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& residual, Tensor& proj) {
  check_2d(x, "linear_add", "x");
  check_2d(w, "linear_add", "w");
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  if (w.dim(1) != k || w.dtype != x.dtype) fail("linear_add: x [{}, {}] does not fit w [{}, {}]", n, k, m, w.dim(1));
  check_dims(residual, n, m, "linear_add", "residual");
  if (residual.dtype != x.dtype) fail("linear_add: the residual must be {}", dtype_name(x.dtype));
  if (bias && bias->numel() != m) fail("linear_add: bias has {} entries for {} outputs", bias->numel(), m);
  if (fuse_gemv(cuda::kOpGemvAdd, x, nullptr, 0.0f, w, bias, m, residual)) return;
  if (n <= gemv_max_rows_) {
    cuda::gemv_add(ty(x.dtype), x.data, w.data, bias ? bias->data : nullptr, as_int(n), as_int(m), as_int(k),
                   residual.data, stream_);
  } else if (!bias) {
    gemm_->run(ty(x.dtype), x.data, w.data, as_int(n), as_int(m), as_int(k), residual.data, ty(x.dtype), true);
  } else {
    Backend::linear_add(x, w, bias, residual, proj);
  }
}

static_assert(cuda::kMaxLogprobs == kMaxPickLogprobs, "the device reports as many logprobs as a pick may ask for");

void CudaBackend::ensure_id_buffers(size_t rows) {
  if (rows <= ids_capacity_) return;
  if (capturing_) fail("CUDA backend: id buffers outgrew their size during graph capture");
  check_cuda(cudaStreamSynchronize(stream_), "id buffers");
  // Picks not collected yet keep their tokens through the move.
  for (Outstanding& o : outstanding_)
    if (!o.saved) {
      const int32_t* src = ids_host_ + o.slot * ids_capacity_;
      o.tokens.assign(src, src + o.rows);
      save_logprobs(o);
      o.saved = true;
    }
  // The newest pick's tokens move along: the next step's edits may still take them (fed picks).
  int32_t* ids = static_cast<int32_t*>(device_alloc(std::max<size_t>(rows, 256) * 4, "argmax results"));
  if (ids_device_) check_cuda(cudaMemcpy(ids, ids_device_, ids_capacity_ * 4, cudaMemcpyDeviceToDevice), "id buffers");
  for (void* p : {static_cast<void*>(ids_device_), static_cast<void*>(argmax_scratch_),
                  static_cast<void*>(picks_device_), static_cast<void*>(lp_device_)})
    if (p) cudaFree(p);
  if (ids_host_) cudaFreeHost(ids_host_);
  if (picks_host_) cudaFreeHost(picks_host_);
  if (lp_host_) cudaFreeHost(lp_host_);
  ids_capacity_ = std::max<size_t>(rows, 256);
  ids_device_ = ids;
  argmax_scratch_ = static_cast<float2*>(device_alloc(ids_capacity_ * cuda::kArgmaxSlices * sizeof(float2), "argmax scratch"));
  picks_device_ = static_cast<cuda::SampleRow*>(device_alloc(ids_capacity_ * sizeof(cuda::SampleRow), "sampling parameters"));
  check_cuda(cudaMallocHost(&ids_host_, 2 * ids_capacity_ * 4), "pinned argmax results");
  check_cuda(cudaMallocHost(&picks_host_, 2 * ids_capacity_ * sizeof(cuda::SampleRow)), "pinned sampling parameters");
  const size_t lp = ids_capacity_ * cuda::kLogprobStride * sizeof(float);
  lp_device_ = static_cast<float*>(device_alloc(lp, "log-probabilities"));
  check_cuda(cudaMallocHost(&lp_host_, 2 * lp), "pinned log-probabilities");
}

// Reads an outstanding pick's log-probabilities out of its pinned slot.
void CudaBackend::save_logprobs(Outstanding& o) const {
  if (o.lp_top.empty()) return;
  o.logprobs.assign(o.rows, {});
  const float* slot = lp_host_ + o.slot * ids_capacity_ * cuda::kLogprobStride;
  for (size_t r = 0; r < o.rows; ++r) {
    if (o.lp_top[r] < 0) continue;
    const float* row = slot + r * cuda::kLogprobStride;
    o.logprobs[r].chosen = row[1];
    for (int32_t i = 0; i < o.lp_top[r]; ++i) {
      int32_t id;
      std::memcpy(&id, &row[2 + 2 * i], sizeof(id));
      o.logprobs[r].top.emplace_back(id, row[3 + 2 * i]);
    }
  }
}

void CudaBackend::ensure_edit_buffers(size_t edits) {
  if (edits <= edits_capacity_) return;
  if (capturing_) fail("CUDA backend: logit edit buffers outgrew their size during graph capture");
  check_cuda(cudaStreamSynchronize(stream_), "logit edit buffers");  // earlier copies from the pinned slots are done
  if (edits_device_) cudaFree(edits_device_);
  if (edits_host_) cudaFreeHost(edits_host_);
  if (edits_raw_) cudaFree(edits_raw_);
  edits_capacity_ = std::max<size_t>(edits, 2 * edits_capacity_);
  edits_device_ = static_cast<cuda::EditRow*>(device_alloc(edits_capacity_ * sizeof(cuda::EditRow), "logit edits"));
  edits_raw_ = static_cast<float*>(device_alloc(edits_capacity_ * sizeof(float), "edited logits"));
  check_cuda(cudaMallocHost(&edits_host_, 2 * edits_capacity_ * sizeof(cuda::EditRow)), "pinned logit edits");
}

namespace {

// Whether a fed pick's pending token changes its edits (a penalty applies).
bool penalises_fed(const TokenPick& p) {
  return p.fed >= 0 && (p.repetition_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
}

}  // namespace

void CudaBackend::start_pick(const Tensor& logits, std::span<const TokenPick> picks) {
  flush_decode();
  const size_t n = logits.ndim == 2 ? static_cast<size_t>(logits.dim(0)) : 0;
  if (logits.ndim != 2 || logits.dtype != DType::F32 || (!picks.empty() && picks.size() != n))
    fail("start_pick: logits must be f32 [rows, vocab] with no TokenPick or one per row");
  size_t edits = 0, extras = 0;
  bool logprobs = false;
  for (const TokenPick& p : picks) {
    if (!(p.uniform >= 0.0f && p.uniform < 1.0f) || !(p.temperature >= 0.0f) || !(p.top_p > 0.0f && p.top_p <= 1.0f))
      fail("sample: a TokenPick is out of range (temperature {}, top_p {}, uniform {})", p.temperature, p.top_p,
           p.uniform);
    if (p.logprobs > kMaxPickLogprobs) fail("sample: at most {} logprobs, asked for {}", kMaxPickLogprobs, p.logprobs);
    for (size_t i = 1; i < p.edits.size(); ++i)
      if (p.edits[i - 1].token >= p.edits[i].token) fail("sample: a TokenPick's edits are not sorted by token");
    if (p.fed >= static_cast<int32_t>(last_pick_rows_))
      fail("sample: a pick takes the token of row {} of a pick of {} rows", p.fed, last_pick_rows_);
    edits += p.edits.size();
    extras += penalises_fed(p) ? 1 : 0;
    logprobs = logprobs || p.logprobs >= 0;
  }
  if (outstanding_.size() >= 2) fail("start_pick: two picks are already outstanding");
  ensure_id_buffers(n);
  ensure_edit_buffers(edits + extras);
  last_pick_rows_ = n;
  // Slots alternate; the one taken now served the pick before the
  // outstanding one, which was collected (its copies are done).
  const int slot = pick_slot_;
  pick_slot_ ^= 1;
  if (picks.empty()) {
    cuda::argmax(logits.as<const float>(), as_int(n), as_int(logits.dim(1)), ids_device_, argmax_scratch_, stream_);
  } else {
    cuda::SampleRow* rows = picks_host_ + slot * ids_capacity_;
    cuda::EditRow* e = edits_host_ + slot * edits_capacity_;
    // The picks' edits sorted by (row, token), then one spare per fed row
    // with penalties (for its pending token, if that has no edit yet).
    int32_t extra = static_cast<int32_t>(edits);
    for (size_t i = 0; i < n; ++i) {
      const TokenPick& p = picks[i];
      const int32_t row = static_cast<int32_t>(i);
      cuda::SampleRow& sr = rows[i];
      sr = cuda::SampleRow{p.temperature, p.top_k, p.top_p, p.min_p, p.uniform, p.logprobs, p.fed, -1, 1, 0, 0};
      sr.repetition = p.repetition_penalty;
      sr.frequency = p.frequency_penalty;
      sr.presence = p.presence_penalty;
      if (penalises_fed(p)) {
        sr.extra = extra;
        e[extra++] = cuda::EditRow{row, -1, 0.0f, 1.0f, 0.0f, 0, 0};
      }
    }
    for (size_t i = 0; i < n; ++i)
      for (const LogitEdit& x : picks[i].edits)
        *e++ =
            cuda::EditRow{static_cast<int32_t>(i), x.token, x.bias, x.repetition, x.subtract, x.mask ? 1 : 0, x.count};
    const size_t all_edits = edits + extras;
    check_cuda(cudaMemcpyAsync(picks_device_, rows, n * sizeof(cuda::SampleRow), cudaMemcpyHostToDevice, stream_),
               "sample");
    ensure_sample_scratch(as_int(logits.dim(1)));
    if (logprobs)  // of the raw logits, before the edits
      cuda::logprob_stats(logits.as<const float>(), as_int(n), as_int(logits.dim(1)), picks_device_, lp_device_,
                          sample_scratch_, stream_);
    if (all_edits > 0) {
      check_cuda(cudaMemcpyAsync(edits_device_, edits_host_ + slot * edits_capacity_, all_edits * sizeof(cuda::EditRow),
                                 cudaMemcpyHostToDevice, stream_),
                 "logit edits");
      // ids_device_ still holds the pick before (this pick overwrites it below).
      if (extras > 0) cuda::feed_edits(picks_device_, as_int(n), ids_device_, edits_device_, as_int(edits), stream_);
      // The rows are the step's own logits, read by nothing after the pick.
      cuda::edit_logits(static_cast<float*>(logits.data), as_int(logits.dim(1)), edits_device_, as_int(all_edits),
                        edits_raw_, stream_);
    }
    cuda::sample(logits.as<const float>(), as_int(n), as_int(logits.dim(1)), picks_device_, ids_device_,
                 sample_scratch_, stream_);
    if (logprobs) {
      cuda::logprob_chosen(logits.as<const float>(), as_int(n), as_int(logits.dim(1)), picks_device_, ids_device_,
                           edits_device_, edits_raw_, as_int(edits), lp_device_, stream_);
      const size_t bytes = n * cuda::kLogprobStride * sizeof(float);
      check_cuda(cudaMemcpyAsync(lp_host_ + slot * ids_capacity_ * cuda::kLogprobStride, lp_device_, bytes,
                                 cudaMemcpyDeviceToHost, stream_),
                 "log-probabilities");
    }
  }
  check_cuda(cudaMemcpyAsync(ids_host_ + slot * ids_capacity_, ids_device_, n * 4, cudaMemcpyDeviceToHost, stream_),
             "pick");
  check_cuda(cudaEventRecord(pick_done_[slot], stream_), "pick");
  Outstanding o{slot, n, false, {}, {}, {}};
  if (logprobs)
    for (const TokenPick& p : picks) o.lp_top.push_back(p.logprobs < 0 ? -1 : std::min(p.logprobs, kMaxPickLogprobs));
  outstanding_.push_back(std::move(o));
}

void CudaBackend::prepare_sampling(int32_t vocab) {
  ensure_sample_scratch(vocab);
  log::info("Sampling scratch: {:.1f} MB for a vocabulary of {}", static_cast<double>(sample_scratch_bytes_) / 1e6,
            vocab);
}

void CudaBackend::ensure_sample_scratch(int vocab) {
  const size_t scratch = cuda::sample_scratch_bytes(vocab);
  if (scratch <= sample_scratch_bytes_) return;
  // Not part of any recording (picks are never captured), so growing it drops none.
  check_cuda(cudaStreamSynchronize(stream_), "sampling scratch");
  if (sample_scratch_) cudaFree(sample_scratch_);
  sample_scratch_ = device_alloc(scratch, "sampling scratch");
  sample_scratch_bytes_ = scratch;
}

void CudaBackend::collect_picks(std::vector<int32_t>& out, std::vector<PickLogprobs>* logprobs) {
  flush_decode();
  if (outstanding_.empty()) fail("collect_picks: no pick was started");
  Outstanding o = std::move(outstanding_.front());
  outstanding_.pop_front();
  if (!o.saved) {
    check_cuda(cudaEventSynchronize(pick_done_[o.slot]), "pick");
    const int32_t* src = ids_host_ + o.slot * ids_capacity_;
    o.tokens.assign(src, src + o.rows);
    save_logprobs(o);
  }
  out = std::move(o.tokens);
  if (logprobs) {
    *logprobs = std::move(o.logprobs);
    logprobs->resize(out.size());
  }
}

void CudaBackend::sample(const Tensor& logits, std::span<const TokenPick> rows, std::span<int32_t> out) {
  if (logits.ndim != 2 || logits.dim(0) != static_cast<int64_t>(out.size()) || rows.size() != out.size())
    fail("sample: logits must be f32 [{}, vocab] with one TokenPick per row", out.size());
  if (!outstanding_.empty()) fail("sample: picks started earlier are not collected");
  std::vector<int32_t> tokens;
  start_pick(logits, rows);
  collect_picks(tokens);
  std::copy(tokens.begin(), tokens.end(), out.begin());
}

void CudaBackend::argmax(const Tensor& logits, std::span<int32_t> out) {
  if (logits.ndim != 2 || logits.dim(0) != static_cast<int64_t>(out.size()))
    fail("argmax: logits must be f32 [{}, vocab]", out.size());
  if (!outstanding_.empty()) fail("argmax: picks started earlier are not collected");
  std::vector<int32_t> tokens;
  start_pick(logits, {});
  collect_picks(tokens);
  std::copy(tokens.begin(), tokens.end(), out.begin());
}

}  // namespace nativelm
