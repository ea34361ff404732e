// Checks shared by the kernel dispatchers (gemm.cpp, quant_dispatch.cpp).
#pragma once
#include "vitint/kernels/cpu.h"

namespace vitint::kernels::detail {

// Throws std::invalid_argument for a value outside the Isa enum and
// std::runtime_error for a path this CPU/OS cannot run (its instructions would
// die with SIGILL), both naming `fn`.
void require_isa(const char* fn, Isa isa);

}  // namespace vitint::kernels::detail
