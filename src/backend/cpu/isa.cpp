#include "backend/cpu/isa.h"

#include <cstdlib>
#include <string>

#include "util/error.h"
#include "util/log.h"

namespace nativelm::cpu {

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "?";
}

bool isa_supported(Isa isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  switch (isa) {
    case Isa::Scalar:
      return true;
    // Each level must cover every flag its kernel file is compiled with
    // (src/backend/CMakeLists.txt), since the compiler may use any of them.
    case Isa::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("f16c");
    case Isa::Avx512:
      return isa_supported(Isa::Avx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq");
  }
  return false;
#else
  return isa == Isa::Scalar;
#endif
}

Isa isa_from_setting(const char* forced) {
  if (forced && *forced) {
    const std::string name = forced;
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
      if (name != isa_name(isa)) continue;
      if (!isa_supported(isa))
        fail("NATIVELM_CPU_ISA={}: this processor does not support it", name);
      return isa;
    }
    if (name == "amx") fail("NATIVELM_CPU_ISA=amx: AMX kernels are not implemented; use avx512");
    fail("NATIVELM_CPU_ISA='{}' is unknown (expected scalar, avx2 or avx512)", name);
  }
  for (Isa isa : {Isa::Avx512, Isa::Avx2}) {
    if (isa_supported(isa)) return isa;
  }
  return Isa::Scalar;
}

Isa active_isa() {
  static const Isa isa = [] {
    Isa chosen = isa_from_setting(std::getenv("NATIVELM_CPU_ISA"));
    log::info("cpu backend: {} kernels", isa_name(chosen));
    return chosen;
  }();
  return isa;
}

}  // namespace nativelm::cpu
