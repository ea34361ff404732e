// CPU feature detection and kernel-path selection.
#pragma once
#include <string>

namespace vitint::kernels {

// Kernel paths, from the normative scalar reference to the fastest.
enum class Isa { kRef = 0, kAvx2 = 1, kAvx512Vnni = 2, kAmx = 3 };

const char* isa_name(Isa isa);
// Parses "ref", "avx2", "avx512vnni", "amx"; returns false on an unknown name.
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
