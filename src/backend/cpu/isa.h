#pragma once
// Which instruction-set level the CPU kernels run at. Chosen once per process
// from what the processor supports, unless NATIVELM_CPU_ISA forces a level
// (tests and benchmarks compare the levels against each other this way).
#include <string_view>

namespace nativelm::cpu {

enum class Isa { Scalar, Avx2, Avx512 };

std::string_view isa_name(Isa isa);
// True when this processor (and OS) can run kernels built for `isa`.
bool isa_supported(Isa isa);
// The level a NATIVELM_CPU_ISA value asks for (null or empty: the best
// supported one); throws Error for an unknown name or an unsupported level.
Isa isa_from_setting(const char* value);
// The level in use: NATIVELM_CPU_ISA if set (throws Error when the processor
// lacks it or the name is unknown), else the best supported one. Logged once.
Isa active_isa();

}  // namespace nativelm::cpu
