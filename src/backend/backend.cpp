#include "backend/backend.h"

#include "backend/cpu/cpu_backend.h"
#include "util/error.h"

#include <fstream>

namespace nativelm {

#ifdef NATIVELM_HAVE_CUDA
namespace cuda {
std::string unavailable_reason();
}
#endif

int64_t Backend::available_memory() const {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return std::make_unique<CpuBackend>();
  if (device == "cuda") {
#ifdef NATIVELM_HAVE_CUDA
    std::string why = cuda::unavailable_reason();
    if (!why.empty()) fail("--device cuda is unavailable: {}", why);
    fail("--device cuda: the CUDA backend is not implemented yet; use --device cpu");
#else
    fail("--device cuda is unavailable: this build has no CUDA backend (nvcc was not found)");
#endif
  }
  fail("unknown --device '{}' (expected cpu or cuda)", device);
}

}  // namespace nativelm
