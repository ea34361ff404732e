// The kernel paths this CPU supports, scalar reference first.
#pragma once
#include <vector>

#include "vitint/kernels/cpu.h"

namespace vitint::test {

inline std::vector<kernels::Isa> supported_isas() {
  std::vector<kernels::Isa> out;
  for (kernels::Isa isa : kernels::kAllIsas)
    if (kernels::isa_supported(isa)) out.push_back(isa);
  return out;
}

}  // namespace vitint::test
