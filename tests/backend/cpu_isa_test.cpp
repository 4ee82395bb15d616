// Choosing the kernel level: NATIVELM_CPU_ISA values and their errors.
#include "cpu_test_util.h"
#include "util/error.h"

namespace nativelm::test {
namespace {

using cpu::Isa;

TEST(CpuIsa, UnsetPicksTheBestSupportedLevel) {
  const Isa best = cpu::isa_from_setting(nullptr);
  EXPECT_TRUE(cpu::isa_supported(best));
  EXPECT_EQ(cpu::isa_from_setting(""), best);
  for (Isa isa : runnable_isas()) EXPECT_LE(static_cast<int>(isa), static_cast<int>(best));
}

TEST(CpuIsa, NamesForceTheirLevel) {
  for (Isa isa : runnable_isas()) {
    EXPECT_EQ(cpu::isa_from_setting(std::string(cpu::isa_name(isa)).c_str()), isa);
    EXPECT_NE(CpuBackend(isa).name().find(cpu::isa_name(isa)), std::string::npos);
  }
}

TEST(CpuIsa, UnknownOrUnavailableLevelsAreErrors) {
  EXPECT_THROW(cpu::isa_from_setting("sse9"), Error);
  EXPECT_THROW(cpu::isa_from_setting("amx"), Error);
  for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
    if (!cpu::isa_supported(isa)) {
      EXPECT_THROW(CpuBackend{isa}, Error);
    }
  }
}

}  // namespace
}  // namespace nativelm::test
