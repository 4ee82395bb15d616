// Greedy picks on the device: only the chosen ids travel to the host.
#include <cfloat>

#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

constexpr int kThreads = 1024;

// Larger value wins; equal values go to the smaller index (as std::max_element).
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

__global__ void argmax_kernel(const float* logits, int vocab, int32_t* out) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float v = -FLT_MAX;
  int idx = vocab;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) better(v, idx, row[j], j);
  for (int o = 16; o > 0; o >>= 1)
    better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = idx;
  }
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? sv[lane] : -FLT_MAX;
    idx = lane < static_cast<int>(blockDim.x / 32) ? si[lane] : vocab;
    for (int o = 16; o > 0; o >>= 1)
      better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
    if (lane == 0) out[blockIdx.x] = idx < vocab ? idx : 0;
  }
}

}  // namespace

void argmax(const float* logits, int rows, int vocab, int32_t* out, cudaStream_t s) {
  if (rows == 0) return;
  argmax_kernel<<<rows, kThreads, 0, s>>>(logits, vocab, out);
}

}  // namespace nativelm::cuda
