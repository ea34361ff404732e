// CPU detection and kernel-path selection.
#include <doctest/doctest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "vitint/kernels/cpu.h"

namespace vk = vitint::kernels;

TEST_CASE("cpu: isa names round-trip through parse_isa") {
  for (vk::Isa isa : vk::kAllIsas) {
    vk::Isa back = vk::Isa::kRef;
    INFO("isa=" << vk::isa_name(isa));
    CHECK(vk::parse_isa(vk::isa_name(isa), &back));
    CHECK(back == isa);
  }
  vk::Isa untouched = vk::Isa::kAvx2;
  CHECK_FALSE(vk::parse_isa("", &untouched));
  CHECK_FALSE(vk::parse_isa("AVX2", &untouched));
  CHECK_FALSE(vk::parse_isa("avx512", &untouched));
  CHECK(untouched == vk::Isa::kAvx2);
  CHECK(std::string(vk::isa_name(vk::Isa::kAvx512Vnni)) == "avx512vnni");
}

TEST_CASE("cpu: support is monotone and the reference always runs") {
  CHECK(vk::isa_supported(vk::Isa::kRef));
  // A path's kernels lean on others' (AMX runs the AVX-512 ones, AVX-VNNI
  // the AVX2 ones); AVX-512 VNNI does not imply AVX-VNNI (Ice Lake, Zen 4).
  if (vk::isa_supported(vk::Isa::kAmx)) CHECK(vk::isa_supported(vk::Isa::kAvx512Vnni));
  if (vk::isa_supported(vk::Isa::kAvx512Vnni)) CHECK(vk::isa_supported(vk::Isa::kAvx2));
  if (vk::isa_supported(vk::Isa::kAvxVnni)) CHECK(vk::isa_supported(vk::Isa::kAvx2));
  // Detection is cached: asking again gives the same answers.
  for (vk::Isa isa : vk::kAllIsas) CHECK(vk::isa_supported(isa) == vk::isa_supported(isa));
}

TEST_CASE("cpu: resolve_isa picks the best path or honours a forced one") {
  const vk::Isa best = vk::resolve_isa(nullptr);
  CHECK(vk::isa_supported(best));
  CHECK(vk::resolve_isa("") == best);
  for (vk::Isa isa : vk::kAllIsas) {
    if (vk::isa_supported(isa)) CHECK(static_cast<int>(isa) <= static_cast<int>(best));
  }
  for (vk::Isa isa : vk::kAllIsas) {
    INFO("isa=" << vk::isa_name(isa));
    if (vk::isa_supported(isa)) {
      CHECK(vk::resolve_isa(vk::isa_name(isa)) == isa);
    } else {
      CHECK_THROWS_AS(vk::resolve_isa(vk::isa_name(isa)), std::runtime_error);
    }
  }
  CHECK_THROWS_AS(vk::resolve_isa("sse9"), std::runtime_error);
  try {
    vk::resolve_isa("sse9");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("VITINT_ISA") != std::string::npos);
  }
}

TEST_CASE("cpu: best_isa follows VITINT_ISA as seen at its first call") {
  // best_isa() caches its answer, so the test only checks consistency with
  // whatever VITINT_ISA this process was started with.
  const char* forced = std::getenv("VITINT_ISA");
  CHECK(vk::best_isa() == vk::resolve_isa(forced));
  CHECK(vk::best_isa() == vk::best_isa());
}
