// The RMSNorm family, computed as transformers does in f32:
// x * rsqrt(mean(x^2) + eps), then times the weight.
#include <cmath>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "util/thread_pool.h"

namespace nativelm {

using namespace cpu;

namespace {

// Sum of squares with eight interleaved partial sums, close to the order of
// torch's vectorised reduction and better conditioned than one running sum.
float sum_squares(const float* x, int64_t d) {
  float part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    for (int j = 0; j < 8; ++j) part[j] += x[i + j] * x[i + j];
  }
  for (; i < d; ++i) part[0] += x[i] * x[i];
  float s = 0.0f;
  for (float p : part) s += p;
  return s;
}

// out = x * rsqrt(mean(x^2) + eps) * w; out may alias x.
void norm_row(const float* x, const float* w, int64_t d, float eps, float* out) {
  const float var = sum_squares(x, d) / static_cast<float>(d);
  const float r = 1.0f / std::sqrt(var + eps);
  for (int64_t j = 0; j < d; ++j) out[j] = (x[j] * r) * w[j];
}

std::vector<float> weight_f32(const Tensor& w, int64_t d, const char* op) {
  check_vector(w, d, op, "weight");
  std::vector<float> v(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) v[j] = load_as_f32(w, j);
  return v;
}

}  // namespace

void CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  check_matrix(x, "rms_norm", "x");
  const int64_t n = x.dim(0), d = x.dim(1);
  check_shape(out, n, d, "rms_norm", "out");
  const std::vector<float> w = weight_f32(weight, d, "rms_norm");
  ThreadPool::global().parallel_for(n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      norm_row(x.as<const float>() + i * d, w.data(), d, eps, out.as<float>() + i * d);
  });
}

void CpuBackend::add_rms_norm(Tensor& residual, const Tensor& x, const Tensor& weight, float eps,
                              Tensor& out) {
  check_matrix(residual, "add_rms_norm", "residual");
  const int64_t n = residual.dim(0), d = residual.dim(1);
  check_shape(x, n, d, "add_rms_norm", "x");
  check_shape(out, n, d, "add_rms_norm", "out");
  if (out.data == residual.data) fail("add_rms_norm: out may not alias residual");
  const std::vector<float> w = weight_f32(weight, d, "add_rms_norm");
  ThreadPool::global().parallel_for(n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* res = residual.as<float>() + i * d;
      const float* add = x.as<const float>() + i * d;
      for (int64_t j = 0; j < d; ++j) res[j] += add[j];
      norm_row(res, w.data(), d, eps, out.as<float>() + i * d);
    }
  });
}

void CpuBackend::head_rms_norm(Tensor& x, int64_t head_dim, const Tensor& weight, float eps) {
  check_matrix(x, "head_rms_norm", "x");
  if (head_dim <= 0 || x.dim(1) % head_dim != 0)
    fail("head_rms_norm: {} columns are not a whole number of heads of {}", x.dim(1), head_dim);
  const std::vector<float> w = weight_f32(weight, head_dim, "head_rms_norm");
  const int64_t slices = x.numel() / head_dim;
  ThreadPool::global().parallel_for(slices, 64, [&](int64_t begin, int64_t end) {
    for (int64_t s = begin; s < end; ++s) {
      float* row = x.as<float>() + s * head_dim;
      norm_row(row, w.data(), head_dim, eps, row);
    }
  });
}

}  // namespace nativelm
