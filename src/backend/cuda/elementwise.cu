// Row gathers, RMSNorm (plain and fused with the residual add), SiLU-and-mul,
// residual and bias adds: memory-bound one-pass kernels.
#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void gather_kernel(const T* table, const int32_t* ids, int d, T* out) {
  grid_dependency_wait();
  grid_dependency_trigger();
  const T* src = table + static_cast<int64_t>(ids[blockIdx.x]) * d;
  T* dst = out + static_cast<int64_t>(blockIdx.x) * d;
  for (int j = threadIdx.x; j < d; j += blockDim.x) dst[j] = src[j];
}

// One row per block with the row held in registers (kPer elements a
// thread): a single read of x (and the residual), one reduction, one write.
constexpr int kPer = 8;

template <class T>
__global__ void norm_kernel(T* __restrict__ residual, const T* __restrict__ x, const T* __restrict__ w, float eps,
                            int d, T* __restrict__ out) {
  grid_dependency_wait();
  grid_dependency_trigger();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * d;
  float v[kPer], r[kPer];
  // All loads first, so they are in flight together.
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    v[i] = j < d ? to_f(x[row + j]) : 0.0f;
    r[i] = residual && j < d ? to_f(residual[row + j]) : 0.0f;
  }
  float ss = 0.0f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (residual && j < d) {
      // residual += x, rounded as transformers' half-precision add.
      const T sum = from_f<T>(r[i] + v[i]);
      residual[row + j] = sum;
      v[i] = to_f(sum);
    }
    ss += v[i] * v[i];
  }
  const float rstd = rsqrtf(block_sum(ss) / static_cast<float>(d) + eps);
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int j = threadIdx.x + i * blockDim.x;
    if (j < d) out[row + j] = from_f<T>(to_f(w[j]) * round_to<T>(v[i] * rstd));
  }
}

int norm_threads(int d) {
  const int t = (d + kPer - 1) / kPer;
  return (t + 31) / 32 * 32;
}

template <class T>
__global__ void silu_mul_kernel(const T* gu, int64_t total, int d, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / d, col = i % d;
    const float g = to_f(gu[row * 2 * d + col]), u = to_f(gu[row * 2 * d + d + col]);
    out[i] = from_f<T>(round_to<T>(g / (1.0f + __expf(-g))) * u);
  }
}

template <class T>
__global__ void add_kernel(T* residual, const T* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    residual[i] = from_f<T>(to_f(residual[i]) + to_f(x[i]));
}

template <class T, class O>
__global__ void add_bias_kernel(const T* bias, int64_t total, int m, O* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = from_f<O>(to_f(out[i]) + to_f(bias[i % m]));
}

int grid_for(int64_t total) {
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}


}  // namespace

void gather(Ty t, const void* table, const int32_t* ids, int n, int d, void* out, cudaStream_t s) {
  if (n == 0) return;
  NATIVELM_DISPATCH(t, launch_pdl(gather_kernel<T>, n, 128, 0, s, static_cast<const T*>(table), ids, d,
                                  static_cast<T*>(out)));
}

void rms_norm(Ty t, const void* x, const void* w, float eps, int n, int d, void* out, cudaStream_t s) {
  if (n == 0) return;
  NATIVELM_DISPATCH(t, launch_pdl(norm_kernel<T>, n, norm_threads(d), 0, s, static_cast<T*>(nullptr),
                                  static_cast<const T*>(x), static_cast<const T*>(w), eps, d, static_cast<T*>(out)));
}

void add_rms_norm(Ty t, void* residual, const void* x, const void* w, float eps, int n, int d,
                  void* out, cudaStream_t s) {
  if (n == 0) return;
  NATIVELM_DISPATCH(t, launch_pdl(norm_kernel<T>, n, norm_threads(d), 0, s, static_cast<T*>(residual),
                                  static_cast<const T*>(x), static_cast<const T*>(w), eps, d, static_cast<T*>(out)));
}

int max_norm_width() { return 1024 * kPer; }

void silu_mul(Ty t, const void* gu, int n, int d, void* out, cudaStream_t s) {
  const int64_t total = static_cast<int64_t>(n) * d;
  if (total == 0) return;
  NATIVELM_DISPATCH(t, silu_mul_kernel<T><<<grid_for(total), kThreads, 0, s>>>(
                           static_cast<const T*>(gu), total, d, static_cast<T*>(out)));
}

void add_bias(Ty t, const void* bias, int n, int m, void* out, Ty out_t, cudaStream_t s) {
  const int64_t total = static_cast<int64_t>(n) * m;
  if (total == 0) return;
  if (out_t == Ty::F32) {
    NATIVELM_DISPATCH(t, add_bias_kernel<T, float><<<grid_for(total), kThreads, 0, s>>>(
                             static_cast<const T*>(bias), total, m, static_cast<float*>(out)));
  } else {
    NATIVELM_DISPATCH(t, add_bias_kernel<T, T><<<grid_for(total), kThreads, 0, s>>>(
                             static_cast<const T*>(bias), total, m, static_cast<T*>(out)));
  }
}

void add(Ty t, void* residual, const void* x, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  NATIVELM_DISPATCH(t, add_kernel<T><<<grid_for(n), kThreads, 0, s>>>(static_cast<T*>(residual),
                                                                      static_cast<const T*>(x), n));
}

void enable_overlapped_launch(bool on) { pdl_enabled() = on; }

bool& pdl_enabled() {
  static bool enabled = false;
  return enabled;
}

namespace {
__global__ void feed_kernel(int32_t* tokens, const int32_t* from, const int32_t* picks, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n && from[i] >= 0) tokens[i] = picks[from[i]];
}
}  // namespace

void feed_tokens(int32_t* tokens, const int32_t* from, const int32_t* picks, int n, cudaStream_t s) {
  if (n > 0) feed_kernel<<<(n + 255) / 256, 256, 0, s>>>(tokens, from, picks, n);
}

}  // namespace nativelm::cuda
