// Models and images made up in-process, for benchmarks and tests that must not
// need a checkpoint or a data set.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "converter/calibrate.h"
#include "converter/checkpoint.h"
#include "engine/src/format.h"

namespace vitint::convert {

// Smooth random RGB images (size x size x 3): bilinear upsampling of a coarse
// random grid plus mild pixel noise, so that activation ranges look like
// those of natural images rather than of white noise (which saturates the
// patch embedding).
std::vector<std::vector<uint8_t>> synthetic_images(int count, int size, uint32_t seed);

// `checkpoint` calibrated on `images` (the recipe's calibration list named
// `calib_list` in the model file) and quantized with `recipe` into `out`.
void convert_in_process(const Checkpoint& checkpoint, const std::vector<std::vector<uint8_t>>& images,
                        const Recipe& recipe, const std::string& calib_list, format::Writer* out);

// A random-weight checkpoint of a standard timm architecture
// (Checkpoint::random), calibrated on `calib_images` synthetic images and
// quantized with `recipe` into `out`.
void convert_random_model(const std::string& architecture, uint32_t seed, int calib_images, const Recipe& recipe,
                          format::Writer* out);

}  // namespace vitint::convert
