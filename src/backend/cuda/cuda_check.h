#pragma once
// CUDA runtime errors become nativelm::Error with the call that failed.
#include <cuda_runtime_api.h>

#include "util/error.h"

namespace nativelm::cuda {

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail("CUDA error in {}: {}", what, cudaGetErrorString(err));
}

}  // namespace nativelm::cuda
