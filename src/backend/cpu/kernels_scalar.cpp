// Portable kernels: the reference every SIMD level is tested against, and the
// fallback for processors without AVX2. Plain loops, f32 accumulation.
#include <algorithm>
#include <cmath>

#include "backend/cpu/kernels.h"

namespace nativelm::cpu {
namespace {

float weight_at(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::F32:
      return static_cast<const float*>(w)[i];
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
  }
  return 0.0f;
}

float dot(const float* a, const void* b, DType bt, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * weight_at(b, bt, i);
  return sum;
}

const void* row_of(const void* w, DType t, int64_t row, int64_t k) {
  return static_cast<const char*>(w) + row * k * static_cast<int64_t>(dtype_size(t));
}

void gemm(const float* x, int64_t n, const void* w, DType wt, int64_t k, int64_t m0, int64_t m1,
          float* out, int64_t ldo, float*) {
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t m = m0; m < m1; ++m) out[r * ldo + m] = dot(x + r * k, row_of(w, wt, m, k), wt, k);
  }
}

void gemv(const float* x, int64_t rows, const void* w, DType wt, int64_t k, int64_t m0, int64_t m1,
          float* out, int64_t ldo) {
  gemm(x, rows, w, wt, k, m0, m1, out, ldo, nullptr);
}

// With gemm_rows 1 the packed x is x itself.
void gemm_pack_x(const float* x, int64_t, int64_t k, int64_t g0, int64_t g1, float* xpack) {
  std::copy(x + g0 * k, x + g1 * k, xpack + g0 * k);
}

int64_t gemm_packed_floats(int64_t n, int64_t k) { return n * k; }
int64_t gemm_scratch_floats(int64_t) { return 0; }

void axpy(float alpha, const void* x, DType xt, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * weight_at(x, xt, i);
}

float exp_sum(float* s, int64_t n, float max) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    s[i] = std::exp(s[i] - max);
    sum += s[i];
  }
  return sum;
}

// With attn_block 1, kt and vf are both plain f32 rows [p][head_dim].
void pack_kv(const AttnSource& src, int64_t p0, int64_t p1, float* kt, float* vf) {
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t d = 0; d < src.head_dim; ++d) {
      const bool valid = p < src.kv_len;
      kt[p * src.head_dim + d] =
          valid ? weight_at(src.k + src.slots[p] * src.row_bytes, src.dtype, d) : 0.0f;
      vf[p * src.head_dim + d] =
          valid ? weight_at(src.v + src.slots[p] * src.row_bytes, src.dtype, d) : 0.0f;
    }
  }
}

int64_t attn_scratch_floats(int64_t kv_len, int64_t head_dim) { return kv_len + head_dim; }

void attend(const AttnQueries& qs, const float* kt, const float* vf, int64_t hd, float* scratch) {
  for (int64_t i = 0; i < qs.n; ++i) {
    const int64_t visible = qs.visible[i];
    float* scores = scratch;
    float* acc = scratch + visible;
    float max = -3.0e38f;
    for (int64_t p = 0; p < visible; ++p) {
      scores[p] = dot(qs.q[i], kt + p * hd, DType::F32, hd) * qs.scale;
      max = std::max(max, scores[p]);
    }
    const float inv = 1.0f / exp_sum(scores, visible, max);
    std::fill(acc, acc + hd, 0.0f);
    for (int64_t p = 0; p < visible; ++p) axpy(scores[p] * inv, vf + p * hd, DType::F32, acc, hd);
    std::copy(acc, acc + hd, qs.out[i]);
  }
}

// Reads the pools directly, one query at a time.
void attend_direct(const AttnSource& src, const AttnQueries& qs, float* scratch) {
  const int64_t hd = src.head_dim;
  for (int64_t i = 0; i < qs.n; ++i) {
    const int64_t visible = qs.visible[i];
    float* scores = scratch;
    float* acc = scratch + visible;
    float max = -3.0e38f;
    for (int64_t p = 0; p < visible; ++p) {
      scores[p] = dot(qs.q[i], src.k + src.slots[p] * src.row_bytes, src.dtype, hd) * qs.scale;
      max = std::max(max, scores[p]);
    }
    const float inv = 1.0f / exp_sum(scores, visible, max);
    std::fill(acc, acc + hd, 0.0f);
    for (int64_t p = 0; p < visible; ++p)
      axpy(scores[p] * inv, src.v + src.slots[p] * src.row_bytes, src.dtype, acc, hd);
    std::copy(acc, acc + hd, qs.out[i]);
  }
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

}  // namespace

extern const Kernels kScalarKernels = {
    .isa = Isa::Scalar,
    .gemv = gemv,
    .gemm_pack_x = gemm_pack_x,
    .gemm = gemm,
    .gemm_rows = 1,
    .gemm_panel = 1,
    .gemm_packed_floats = gemm_packed_floats,
    .gemm_scratch_floats = gemm_scratch_floats,
    .pack_kv = pack_kv,
    .attend = attend,
    .attend_direct = attend_direct,
    .attn_block = 1,
    .attn_rows = 1,
    .attn_scratch_floats = attn_scratch_floats,
    .silu_mul = silu_mul,
};

}  // namespace nativelm::cpu
