#include "vitint/kernels/cpu.h"

#include "cpu_internal.h"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#define VITINT_X86 1
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#endif

namespace vitint::kernels {
namespace {

struct CpuFeatures {
  bool avx2 = false;        // AVX2 + FMA + F16C with the YMM state enabled by the OS
  bool avxvnni = false;     // AVX2 and AVX-VNNI (VEX-encoded vpdpbusd)
  bool avx512vnni = false;  // F/CD/BW/VL/DQ/VNNI/VBMI with the ZMM and opmask state enabled
  bool amx = false;         // AMX-TILE/INT8, XTILECFG/XTILEDATA enabled, permission granted
};

#if defined(VITINT_X86)
uint64_t read_xcr0() {
  uint32_t eax = 0;
  uint32_t edx = 0;
  // Raw opcode spelling would also work; the mnemonic needs no -mxsave flag.
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t{edx} << 32) | eax;
}

bool bit(uint32_t reg, int n) { return ((reg >> n) & 1u) != 0; }

// Linux keeps the 8 KiB AMX tile data out of a process's signal frames and
// context switches until the process asks for it; without the permission the
// first tile instruction raises SIGILL.
bool request_amx_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

CpuFeatures detect() {
  CpuFeatures f;
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return f;
  const uint32_t max_leaf = eax;
  if (max_leaf < 7) return f;

  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool osxsave = bit(ecx, 27);
  const bool avx = bit(ecx, 28);
  const bool fma = bit(ecx, 12);
  const bool f16c = bit(ecx, 29);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  // XCR0: 1 = SSE, 2 = AVX (YMM upper halves), 5-7 = opmask, ZMM_Hi256,
  // Hi16_ZMM, 17-18 = XTILECFG, XTILEDATA.
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;
  const bool os_tile = (xcr0 & 0x60000) == 0x60000;

  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = bit(ebx, 5);
  const bool avx512f = bit(ebx, 16);
  const bool avx512dq = bit(ebx, 17);
  const bool avx512cd = bit(ebx, 28);
  const bool avx512bw = bit(ebx, 30);
  const bool avx512vl = bit(ebx, 31);
  const bool avx512vbmi = bit(ecx, 1);
  const bool avx512vnni = bit(ecx, 11);
  const bool amx_tile = bit(edx, 24);
  const bool amx_int8 = bit(edx, 25);
  bool avx_vnni = false;
  if (eax >= 1) {  // leaf 7's highest subleaf
    uint32_t a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    avx_vnni = bit(a1, 4);
  }

  f.avx2 = os_ymm && avx2 && fma && f16c;
  f.avxvnni = f.avx2 && avx_vnni;
  // The *_avx512vnni.cpp units are compiled with all of these flags, so the
  // compiler may emit any of them there.
  f.avx512vnni = f.avx2 && os_zmm && avx512f && avx512dq && avx512cd && avx512bw && avx512vl &&
                 avx512vnni && avx512vbmi;
  // The AMX path runs the AVX-512 kernels for everything but its GEMM tiles.
  f.amx = f.avx512vnni && os_tile && amx_tile && amx_int8 && request_amx_permission();
  return f;
}
#else
CpuFeatures detect() { return {}; }
#endif

const CpuFeatures& features() {
  static const CpuFeatures f = detect();  // C++11 guarantees one thread-safe init
  return f;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef:
      return "ref";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvxVnni:
      return "avxvnni";
    case Isa::kAvx512Vnni:
      return "avx512vnni";
    case Isa::kAmx:
      return "amx";
  }
  return "unknown";
}

bool parse_isa(const std::string& name, Isa* out) {
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) {
      if (out != nullptr) *out = isa;
      return true;
    }
  }
  return false;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = features();
  switch (isa) {
    case Isa::kRef:
      return true;
    case Isa::kAvx2:
      return f.avx2;
    case Isa::kAvxVnni:
      return f.avxvnni;
    case Isa::kAvx512Vnni:
      return f.avx512vnni;
    case Isa::kAmx:
      return f.amx;
  }
  return false;
}

std::string isa_names(const char* last) {
  std::string names;
  for (size_t i = 0; i < std::size(kAllIsas); ++i) {
    if (i > 0) names += i + 1 == std::size(kAllIsas) ? last : ", ";
    names += isa_name(kAllIsas[i]);
  }
  return names;
}

Isa resolve_isa(const char* forced) {
  if (forced == nullptr || *forced == '\0') {
    // kAllIsas runs from the reference to the fastest path.
    for (auto it = std::rbegin(kAllIsas); it != std::rend(kAllIsas); ++it) {
      if (isa_supported(*it)) return *it;
    }
    return Isa::kRef;
  }
  Isa isa = Isa::kRef;
  if (!parse_isa(forced, &isa)) {
    throw std::runtime_error(std::string("VITINT_ISA=\"") + forced + "\" names no kernel path; use one of " +
                             isa_names(", ") + " (or unset it to pick the best supported one)");
  }
  if (!isa_supported(isa)) {
    std::string msg = std::string("VITINT_ISA=") + forced + " forces a kernel path this machine ";
    msg += isa == Isa::kAmx ? "cannot run (no AMX-INT8, or Linux refused the tile-data permission)"
                            : "cannot run (CPU or OS lacks the instruction set)";
    msg += "; the best supported path here is ";
    msg += isa_name(resolve_isa(nullptr));
    msg += " (unset VITINT_ISA to use it)";
    throw std::runtime_error(msg);
  }
  return isa;
}

Isa best_isa() {
  // A throwing initializer leaves the static uninitialized, so a bad
  // VITINT_ISA keeps failing loudly on every call.
  static const Isa isa = resolve_isa(std::getenv("VITINT_ISA"));
  return isa;
}

namespace detail {

void require_isa(const char* fn, Isa isa) {
  if (std::find(std::begin(kAllIsas), std::end(kAllIsas), isa) == std::end(kAllIsas))
    throw std::invalid_argument(std::string("vitint::kernels::") + fn + ": invalid Isa value " +
                                std::to_string(static_cast<int>(isa)));
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("vitint::kernels::") + fn + ": kernel path " + isa_name(isa) +
                             " is not supported on this CPU/OS (use best_isa())");
}

}  // namespace detail

}  // namespace vitint::kernels
