#include "converter/synthetic.h"

#include <algorithm>
#include <random>

#include "converter/checkpoint.h"
#include "converter/quantize.h"
#include "converter/reference.h"

namespace vitint::convert {

std::vector<std::vector<uint8_t>> synthetic_images(int count, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::normal_distribution<float> noise(0.0f, 6.0f);
  constexpr int kGrid = 8;
  std::vector<std::vector<uint8_t>> images;
  for (int n = 0; n < count; ++n) {
    std::vector<float> grid(kGrid * kGrid * 3);
    for (float& g : grid) g = 255.0f * unit(rng);
    std::vector<uint8_t> img(static_cast<size_t>(size) * static_cast<size_t>(size) * 3);
    const float step = static_cast<float>(kGrid - 1) / static_cast<float>(size - 1);
    for (int y = 0; y < size; ++y) {
      const float fy = static_cast<float>(y) * step;
      const int y0 = std::min(static_cast<int>(fy), kGrid - 2);
      const float wy = fy - static_cast<float>(y0);
      for (int x = 0; x < size; ++x) {
        const float fx = static_cast<float>(x) * step;
        const int x0 = std::min(static_cast<int>(fx), kGrid - 2);
        const float wx = fx - static_cast<float>(x0);
        for (int c = 0; c < 3; ++c) {
          auto at = [&](int gy, int gx) { return grid[static_cast<size_t>((gy * kGrid + gx) * 3 + c)]; };
          const float v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)) +
                          wy * ((1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1)) + noise(rng);
          img[static_cast<size_t>((y * size + x) * 3 + c)] =
              static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
        }
      }
    }
    images.push_back(std::move(img));
  }
  return images;
}

void convert_in_process(const Checkpoint& checkpoint, const std::vector<std::vector<uint8_t>>& images,
                        const Recipe& recipe, const std::string& calib_list, format::Writer* out) {
  const ReferenceModel reference(checkpoint);
  ConvertInfo info;
  info.recipe = recipe;
  info.calib_count = static_cast<int>(images.size());
  info.calib_list = calib_list;
  const Calibration cal = calibrate(reference, images, info.recipe, false);
  quantize_vit(checkpoint, cal, info, out);
}

void convert_random_model(const std::string& architecture, uint32_t seed, int calib_images, const Recipe& recipe,
                          format::Writer* out) {
  const Checkpoint ckpt = Checkpoint::random(architecture, seed);
  convert_in_process(ckpt, synthetic_images(calib_images, ckpt.config().image_size, seed + 1), recipe,
                     "synthetic smooth noise", out);
}

}  // namespace vitint::convert
