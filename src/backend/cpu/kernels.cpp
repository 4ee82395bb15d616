#include "backend/cpu/kernels.h"

#include "util/error.h"

namespace nativelm::cpu {

extern const Kernels kScalarKernels;
extern const Kernels kAvx2Kernels;
extern const Kernels kAvx512Kernels;

const Kernels& kernels_for(Isa isa) {
  if (!isa_supported(isa))
    fail("the {} CPU kernels need instructions this processor lacks", isa_name(isa));
  switch (isa) {
    case Isa::Scalar:
      return kScalarKernels;
    case Isa::Avx2:
      return kAvx2Kernels;
    case Isa::Avx512:
      return kAvx512Kernels;
  }
  return kScalarKernels;
}

}  // namespace nativelm::cpu
