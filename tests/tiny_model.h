// A random-weight DeiT-Tiny converted in-process (no checkpoint needed):
// for API and error-path tests that must not depend on ../shared.
#pragma once
#include <cstdint>
#include <vector>

#include "converter/quantize.h"
#include "converter/synthetic.h"

namespace vitint::test {

using convert::synthetic_images;

// The bytes of a converted random DeiT-Tiny model file (2 calibration images).
inline std::vector<uint8_t> tiny_model_bytes(int attention_bits = 8, uint32_t seed = 7) {
  convert::Recipe recipe;
  recipe.attention_bits = attention_bits;
  format::Writer w;
  convert::convert_random_model("deit_tiny_patch16_224", seed, 2, recipe, &w);
  return w.to_bytes();
}

}  // namespace vitint::test
