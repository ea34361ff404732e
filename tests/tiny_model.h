// Random-weight models converted in-process (no checkpoint needed): for API
// and error-path tests that must not depend on ../shared.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "converter/quantize.h"
#include "converter/synthetic.h"

namespace vitint::test {

using convert::synthetic_images;

// The bytes of a converted random-weight model of architecture `arch`
// (e.g. "deit_tiny_patch16_224"), calibrated on `calib_images` images;
// shared_stream false: a grid per residual-stream point (exact residual adds).
inline std::vector<uint8_t> random_model_bytes(const std::string& arch, uint32_t seed, int calib_images,
                                               int attention_bits = 8, bool shared_stream = true) {
  convert::Recipe recipe;
  recipe.attention_bits = attention_bits;
  recipe.shared_stream = shared_stream;
  format::Writer w;
  convert::convert_random_model(arch, seed, calib_images, recipe, &w);
  return w.to_bytes();
}

// The bytes of a converted random DeiT-Tiny model file (2 calibration images).
inline std::vector<uint8_t> tiny_model_bytes(int attention_bits = 8, uint32_t seed = 7, bool shared_stream = true) {
  return random_model_bytes("deit_tiny_patch16_224", seed, 2, attention_bits, shared_stream);
}

}  // namespace vitint::test
