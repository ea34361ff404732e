// A random-weight DeiT-Tiny converted in-process (no checkpoint needed):
// for API and error-path tests that must not depend on ../shared.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "converter/calibrate.h"
#include "converter/checkpoint.h"
#include "converter/quantize.h"

namespace vitint::test {

// Smooth synthetic images (random gradients) of the model's input size.
inline std::vector<std::vector<uint8_t>> synthetic_images(int count, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<std::vector<uint8_t>> images;
  for (int n = 0; n < count; ++n) {
    std::vector<uint8_t> img(static_cast<size_t>(size) * size * 3);
    const float a = u(rng), b = u(rng), c = u(rng);
    for (int y = 0; y < size; ++y)
      for (int x = 0; x < size; ++x)
        for (int ch = 0; ch < 3; ++ch) {
          const float v = 127.5f + 100.f * std::sin(a * 0.1f * static_cast<float>(x) + b * 0.07f * static_cast<float>(y) + c * static_cast<float>(ch)) + 20.f * (u(rng) - 0.5f);
          img[(static_cast<size_t>(y) * size + x) * 3 + ch] = static_cast<uint8_t>(std::clamp(v, 0.f, 255.f));
        }
    images.push_back(std::move(img));
  }
  return images;
}

// The bytes of a converted random DeiT-Tiny model file.
inline std::vector<uint8_t> tiny_model_bytes(int attention_bits = 8, uint32_t seed = 7) {
  const convert::Checkpoint ckpt = convert::Checkpoint::random("deit_tiny_patch16_224", seed);
  const convert::ReferenceModel ref(ckpt);
  convert::ConvertInfo info;
  info.recipe.attention_bits = attention_bits;
  info.calib_count = 2;
  info.calib_list = "synthetic";
  const auto images = synthetic_images(2, ckpt.config().image_size, seed);
  const convert::Calibration cal = convert::calibrate(ref, images, info.recipe, false);
  format::Writer w;
  convert::quantize_vit(ckpt, cal, info, &w);
  return w.to_bytes();
}

}  // namespace vitint::test
