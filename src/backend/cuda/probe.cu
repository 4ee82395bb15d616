// The CUDA backend starts here: for now it only reports whether a usable GPU
// is present, so that the build already compiles CUDA when nvcc exists.
#include <cuda_runtime.h>

#include <string>

namespace nativelm::cuda {

// Returns an empty string when a CUDA device is usable, else the reason.
std::string unavailable_reason() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("no CUDA device: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device found";
  return "";
}

}  // namespace nativelm::cuda
