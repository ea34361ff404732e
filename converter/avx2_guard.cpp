// Linked into the tools whose code is compiled for AVX2 + FMA (the converter
// library: Eigen's FP32 reference, calibration): on a CPU without them they
// would die of an illegal instruction somewhere; this says why instead. It
// is compiled for baseline x86-64 and runs before any static constructor of
// the AVX2 code (constructor priority 101; C++ initializers run at 65535).
#include <errno.h>  // program_invocation_short_name (GNU)

#include <cstdio>
#include <cstdlib>

#if defined(__x86_64__) || defined(__i386__)
namespace {

__attribute__((constructor(101))) void vitint_require_avx2_fma() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return;
  std::fprintf(stderr,
               "%s: error: this tool needs a CPU with AVX2 and FMA (the converter's FP32 reference and calibration "
               "are compiled for them); the libvitint runtime and vitint-classify run on any x86-64 CPU\n",
               program_invocation_short_name);
  std::_Exit(1);
}

}  // namespace
#endif
