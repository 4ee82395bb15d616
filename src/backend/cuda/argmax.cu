// Greedy picks on the device: only the chosen ids travel to the host.
#include <cfloat>
#include <climits>

#include "backend/cuda/common.cuh"

namespace nativelm::cuda {

namespace {

// Larger value wins; equal values go to the smaller index (as std::max_element).
__device__ __forceinline__ void better(float& v, int& i, float ov, int oi) {
  if (ov > v || (ov == v && oi < i)) {
    v = ov;
    i = oi;
  }
}

// Block-wide best (value, index); thread 0 gets the result.
__device__ void block_best(float& v, int& idx) {
  __shared__ float sv[32];
  __shared__ int si[32];
  for (int o = 16; o > 0; o >>= 1)
    better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = idx;
  }
  __syncthreads();
  if (warp == 0) {
    const bool have = lane < static_cast<int>(blockDim.x / 32);
    v = have ? sv[lane] : -FLT_MAX;
    idx = have ? si[lane] : INT_MAX;
    for (int o = 16; o > 0; o >>= 1)
      better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
  }
}

// Stage one: each of kArgmaxSlices blocks per row scans a slice.
__global__ void argmax_slices(const float* logits, int vocab, float2* scratch) {
  grid_dependency_wait();
  grid_dependency_trigger();
  const int row = blockIdx.y, slice = blockIdx.x;
  const int per = (vocab + kArgmaxSlices - 1) / kArgmaxSlices;
  const int begin = slice * per, end = min(vocab, begin + per);
  const float* r = logits + static_cast<int64_t>(row) * vocab;
  float v = -FLT_MAX;
  int idx = INT_MAX;
  // kLoads values per thread asked for at once: the slice is read in one
  // or two trips to L2 instead of one dependent trip per value.
  constexpr int kLoads = 8;
  for (int base = begin + threadIdx.x; base < end; base += kLoads * blockDim.x) {
    float x[kLoads];
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = base + u * blockDim.x;
      x[u] = j < end ? r[j] : -FLT_MAX;
    }
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int j = base + u * blockDim.x;
      if (j < end) better(v, idx, x[u], j);
    }
  }
  block_best(v, idx);
  if (threadIdx.x == 0) scratch[row * kArgmaxSlices + slice] = make_float2(v, __int_as_float(idx));
}

// Stage two: one warp per row over the slices' results.
__global__ void argmax_rows(const float2* scratch, int vocab, int32_t* out) {
  grid_dependency_wait();
  grid_dependency_trigger();
  const int row = blockIdx.x, lane = threadIdx.x;
  float v = -FLT_MAX;
  int idx = INT_MAX;
  for (int s = lane; s < kArgmaxSlices; s += 32) {
    const float2 p = scratch[row * kArgmaxSlices + s];
    better(v, idx, p.x, __float_as_int(p.y));
  }
  for (int o = 16; o > 0; o >>= 1)
    better(v, idx, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, idx, o));
  if (lane == 0) out[row] = idx < vocab ? idx : 0;
}

}  // namespace

void argmax(const float* logits, int rows, int vocab, int32_t* out, float2* scratch, cudaStream_t s) {
  if (rows == 0) return;
  launch_pdl(argmax_slices, dim3(kArgmaxSlices, rows), 256, 0, s, logits, vocab, scratch);
  launch_pdl(argmax_rows, rows, 32, 0, s, static_cast<const float2*>(scratch), vocab, out);
}

}  // namespace nativelm::cuda
