// Rotary embedding and the gated activation.
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
