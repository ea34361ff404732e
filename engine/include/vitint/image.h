// Image decoding and timm's evaluation preprocessing, in 8-bit integers.
// Internal (not installed): these functions throw vitint::Error; the public
// API (vitint.h) wraps them in Status.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "vitint/vitint.h"

namespace vitint {

// Parses timm's pretrained_cfg names ("bicubic", "bilinear"); throws Error otherwise.
Interpolation parse_interpolation(const std::string& name);
const char* interpolation_name(Interpolation interp);

// Decodes a JPEG/PNG/BMP/PPM/TGA/GIF file (grey and alpha become RGB).
// Throws Error naming the path and the reason if it cannot be read or decoded.
Image load_image(const std::string& path);
Image decode_image(const uint8_t* bytes, size_t size, const std::string& what);

// Resizes with Pillow's algorithm (separable convolution, antialiased when
// downscaling, 8-bit fixed-point coefficients, horizontal pass then vertical),
// which torchvision applies to PIL images: the output is byte-identical to
// PIL.Image.resize((width, height), BICUBIC or BILINEAR).
Image resize(const Image& src, int width, int height, Interpolation interp);

// torchvision CenterCrop: top = round((H - h) / 2), left = round((W - w) / 2).
// The crop must fit inside the image.
Image center_crop(const Image& src, int width, int height);

// timm's eval transform up to ToTensor: resize the shorter side to
// floor(input_size / crop_pct) keeping the aspect ratio (torchvision Resize
// with an int size), then center-crop input_size x input_size.
Image preprocess(const Image& src, int input_size, double crop_pct, Interpolation interp);

}  // namespace vitint
