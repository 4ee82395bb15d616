// CpuBackend::linear: out[n, m] = x[n, k] @ w[m, k]^T (+ bias). A few rows
// (decode) stream the weights once through the GEMV kernel, split over
// threads by output column; more rows (prefill) use the packed GEMM, split
// over threads by whole panels of output columns.
#include <algorithm>
#include <vector>

#include "backend/cpu/checks.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/kernels.h"
#include "util/thread_pool.h"

namespace nativelm {

using namespace cpu;

namespace {

constexpr int64_t kGemmRowChunk = 1024;

void check_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& out) {
  check_matrix(x, "linear", "x");
  check_present(w, "linear", "weight");
  if (w.ndim != 2) fail("linear: the weight must be 2-D, got {}-D", w.ndim);
  if (w.dim(1) != x.dim(1))
    fail("linear: x has {} columns but the weight is [{}, {}]", x.dim(1), w.dim(0), w.dim(1));
  check_shape(out, x.dim(0), w.dim(0), "linear", "out");
  if (bias) check_vector(*bias, w.dim(0), "linear", "bias");
  if (out.data == x.data) fail("linear: out may not alias x");
}

void add_bias(const Tensor& bias, Tensor& out) {
  const int64_t m = out.dim(1);
  std::vector<float> b(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) b[j] = load_as_f32(bias, j);
  for (int64_t i = 0; i < out.dim(0); ++i) {
    float* row = out.as<float>() + i * m;
    for (int64_t j = 0; j < m; ++j) row[j] += b[j];
  }
}

}  // namespace

void CpuBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& out) {
  check_linear(x, w, bias, out);
  const int64_t n = x.dim(0), k = x.dim(1), m = w.dim(0);
  const Kernels& kern = *kernels_;
  const float* xs = x.as<const float>();
  float* os = out.as<float>();
  ThreadPool& pool = ThreadPool::global();
  if (n <= kGemvMaxRows) {
    // Chunks of 64 columns keep each thread's slice of the weight contiguous.
    pool.parallel_for(m, 64, [&](int64_t m0, int64_t m1) {
      kern.gemv(xs, n, w.data, w.dtype, k, m0, m1, os, m);
    });
  } else {
    // Long prompts go in chunks of rows so that the packed copy of x stays a
    // few MB.
    const int64_t panel = kern.gemm_panel;
    const int64_t panels = (m + panel - 1) / panel;
    thread_local std::vector<float> xpack_buffer;  // the calling thread's
    for (int64_t r0 = 0; r0 < n; r0 += kGemmRowChunk) {
      const int64_t rows = std::min(kGemmRowChunk, n - r0);
      xpack_buffer.resize(static_cast<size_t>(kern.gemm_packed_floats(rows, k)));
      float* xpack = xpack_buffer.data();  // the workers must see this one
      const int64_t groups = (rows + kern.gemm_rows - 1) / kern.gemm_rows;
      pool.parallel_for(groups, 4, [&](int64_t g0, int64_t g1) {
        kern.gemm_pack_x(xs + r0 * k, rows, k, g0, g1, xpack);
      });
      pool.parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
        thread_local std::vector<float> scratch;
        scratch.resize(static_cast<size_t>(kern.gemm_scratch_floats(rows)));
        kern.gemm(xpack, rows, w.data, w.dtype, k, p0 * panel, std::min(p1 * panel, m), os + r0 * m,
                  m, scratch.data());
      });
    }
  }
  if (bias) add_bias(*bias, out);
}

}  // namespace nativelm
