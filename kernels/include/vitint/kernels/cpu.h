// CPU feature detection and kernel-path selection.
#pragma once
#include <string>

namespace vitint::kernels {

// Kernel paths, from the normative scalar reference to the fastest. kAvxVnni
// is AVX2 plus AVX-VNNI (vpdpbusd on ymm: CPUs without AVX-512, Alder Lake
// and later client cores); the AVX-512 paths do not require it.
enum class Isa { kRef = 0, kAvx2 = 1, kAvxVnni = 2, kAvx512Vnni = 3, kAmx = 4 };
inline constexpr Isa kAllIsas[] = {Isa::kRef, Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512Vnni, Isa::kAmx};

const char* isa_name(Isa isa);
// The names of kAllIsas for messages: "ref, avx2, ..., avx512vnni<last>amx",
// last being the separator before the last name (", " or " or ").
std::string isa_names(const char* last);
// Parses "ref", "avx2", "avxvnni", "avx512vnni", "amx"; returns false on an unknown name.
bool parse_isa(const std::string& name, Isa* out);
// True when this CPU (and, for AMX, the kernel's tile permission) supports the path.
bool isa_supported(Isa isa);
// The best supported path, unless VITINT_ISA names another one (which must be supported).
// Computed once per process; throws std::runtime_error on a bad VITINT_ISA.
Isa best_isa();
// best_isa()'s rule for a given VITINT_ISA value, uncached: null or empty picks the
// best supported path; an unknown or unsupported name throws std::runtime_error.
Isa resolve_isa(const char* forced);

}  // namespace vitint::kernels
