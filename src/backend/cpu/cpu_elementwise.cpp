// Rotary embedding and the gated activation.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace nativelm {

using namespace cpu;

void CpuBackend::rope(Tensor& x, int64_t head_dim, std::span<const int32_t> positions,
                      std::span<const float> inv_freq) {
  check_matrix(x, "rope", "x");
  const int64_t n = x.dim(0), width = x.dim(1);
  if (head_dim <= 0 || head_dim % 2 != 0 || width % head_dim != 0)
    fail("rope: {} columns are not a whole number of even-sized heads of {}", width, head_dim);
  const int64_t half = head_dim / 2;
  if (static_cast<int64_t>(positions.size()) != n)
    fail("rope: {} positions for {} rows", positions.size(), n);
  if (static_cast<int64_t>(inv_freq.size()) != half)
    fail("rope: inv_freq has {} entries, expected head_dim / 2 = {}", inv_freq.size(), half);
  ThreadPool::global().parallel_for(n, 4, [&](int64_t begin, int64_t end) {
    std::vector<float> cos(half), sin(half);
    for (int64_t i = begin; i < end; ++i) {
      // As transformers: the angle is an f32 product, then f32 cos/sin.
      const float pos = static_cast<float>(positions[i]);
      for (int64_t j = 0; j < half; ++j) {
        const float angle = pos * inv_freq[j];
        cos[j] = std::cos(angle);
        sin[j] = std::sin(angle);
      }
      float* row = x.as<float>() + i * width;
      for (int64_t h = 0; h < width; h += head_dim) {
        float* a = row + h;
        float* b = a + half;
        for (int64_t j = 0; j < half; ++j) {
          const float x1 = a[j], x2 = b[j];
          a[j] = x1 * cos[j] + (-x2) * sin[j];
          b[j] = x2 * cos[j] + x1 * sin[j];
        }
      }
    }
  });
}

void CpuBackend::qkv_prepare(const Tensor& qkv, const QkvLayout& layout, const Tensor* q_norm,
                             const Tensor* k_norm, float eps, std::span<const int32_t> positions,
                             std::span<const float> inv_freq, std::span<const int32_t> slots,
                             Tensor& k_pool, Tensor& v_pool, Tensor& q_out) {
  check_matrix(qkv, "qkv_prepare", "qkv");
  const int64_t n = qkv.dim(0), hd = layout.head_dim;
  const int64_t qw = layout.heads * hd, kw = layout.kv_heads * hd;
  if (hd <= 0 || qkv.dim(1) != layout.width())
    fail("qkv_prepare: qkv has {} columns, the layout needs {}", qkv.dim(1), layout.width());
  check_shape(q_out, n, qw, "qkv_prepare", "q_out");
  if ((q_norm == nullptr) != (k_norm == nullptr)) fail("qkv_prepare: q_norm and k_norm go together");
  // k and v are split out into dense scratch rows so the whole-tensor ops
  // below apply; this costs a copy of n * (q + 2 kv) floats, small next to
  // the projections that made them.
  scratch_.resize(static_cast<size_t>(2 * n * kw));
  Tensor k(scratch_.data(), DType::F32, {n, kw}), v(scratch_.data() + n * kw, DType::F32, {n, kw});
  ThreadPool::global().parallel_for(n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = qkv.as<const float>() + i * qkv.dim(1);
      std::copy(row, row + qw, q_out.as<float>() + i * qw);
      std::copy(row + qw, row + qw + kw, k.as<float>() + i * kw);
      std::copy(row + qw + kw, row + qw + 2 * kw, v.as<float>() + i * kw);
    }
  });
  if (q_norm) {
    head_rms_norm(q_out, hd, *q_norm, eps);
    head_rms_norm(k, hd, *k_norm, eps);
  }
  rope(q_out, hd, positions, inv_freq);
  rope(k, hd, positions, inv_freq);
  write_kv(k, v, slots, k_pool, v_pool);
}

void CpuBackend::add(Tensor& residual, const Tensor& x) {
  check_matrix(residual, "add", "residual");
  check_shape(x, residual.dim(0), residual.dim(1), "add", "x");
  const int64_t total = residual.numel();
  ThreadPool::global().parallel_for(total, 4096, [&](int64_t begin, int64_t end) {
    float* r = residual.as<float>();
    const float* v = x.as<const float>();
    for (int64_t i = begin; i < end; ++i) r[i] += v[i];
  });
}

void CpuBackend::silu_mul(const Tensor& gate_up, Tensor& out) {
  check_matrix(gate_up, "silu_mul", "gate_up");
  const int64_t n = gate_up.dim(0), d = gate_up.dim(1) / 2;
  if (gate_up.dim(1) % 2 != 0) fail("silu_mul: gate_up has an odd number of columns");
  check_shape(out, n, d, "silu_mul", "out");
  const Kernels& kern = *kernels_;
  ThreadPool::global().parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = gate_up.as<const float>() + i * 2 * d;
      kern.silu_mul(row, row + d, out.as<float>() + i * d, d);
    }
  });
}

void CpuBackend::silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  check_matrix(gate, "silu_mul", "gate");
  const int64_t n = gate.dim(0), d = gate.dim(1);
  check_shape(up, n, d, "silu_mul", "up");
  check_shape(out, n, d, "silu_mul", "out");
  const Kernels& kern = *kernels_;
  ThreadPool::global().parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    kern.silu_mul(gate.as<const float>() + begin * d, up.as<const float>() + begin * d,
                  out.as<float>() + begin * d, (end - begin) * d);
  });
}

}  // namespace nativelm
