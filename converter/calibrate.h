// Calibration: run the FP32 reference over calibration images and derive the
// ranges of every activation quantizer (and PTS channel shifts of the
// residual stream).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "converter/reference.h"

namespace vitint::convert {

struct Recipe {
  std::string method = "minmax";  // activation calibrator
  bool pts = true;                // power-of-two channel scales on LayerNorm inputs
  // Per-channel uint8 quantization of the LayerNorm outputs, folded into the
  // LayerNorm's integer affine and the next linear layer's weights (as
  // RepQ-ViT): no runtime cost. The channel scales are s_c^a * s_tensor^(1-a)
  // with a in {0, 1/4, .., 1} chosen per layer by the estimated output noise
  // of the next linear layer (activation plus weight rounding).
  bool channel_ln = true;
  // The same for the GELU output (fc2 input) and the attention context (proj input).
  bool channel_gelu = true;
  bool channel_attn = true;
  // Fold the expected output shift of the weight rounding into the biases
  // (off by default: no measurable gain on DeiT-T / ViT-T, within +-0.4 top-1).
  bool bias_correction = false;
  // 4-bit attention: rescale each row of Log-Int-Softmax weights to a unit
  // sum before attn @ v (FQ-ViT leaves the sum of 2^-code as it falls).
  bool lis_normalize = true;
  int attention_bits = 8;         // 8: uniform uint8 probabilities, 4: Log-Int-Softmax
  int residual_bits = 16;         // residual stream bits (8 as FQ-ViT, 16 as I-ViT)
};

struct Range {
  double min = 0;
  double max = 0;
  double mean_sq = 0;  // E[x^2]
  double mean = 0;     // E[x], for bias correction
};

// One residual-stream quantization point.
struct StreamCalib {
  Range range;                 // over all channels
  std::vector<uint8_t> alpha;  // per channel, 0..3 (all 0 without PTS)
};

// Activation rows sampled deterministically from the calibration set
// (tokens spread over all images), row-major [count][cols].
struct RowSample {
  int cols = 0;
  int count = 0;
  std::vector<float> rows;
};

struct Calibration {
  // Per block.
  std::vector<Range> ln1, q, k, v, attn_out, ln2, gelu;
  // Per block, per channel: the LayerNorm outputs.
  std::vector<std::vector<Range>> ln1_channels, ln2_channels, gelu_channels, attn_out_channels;
  Range head_in;
  std::vector<Range> head_in_channels;
  // Inputs of the layers whose channel scales can fold into weights, to
  // choose the folding by the layer's output error.
  std::vector<RowSample> ln1_rows, ln2_rows, gelu_rows, attn_out_rows;
  RowSample head_in_rows;
  // 2 * depth + 1 stream points (see models/vit_spec.h).
  std::vector<StreamCalib> streams;
};

// images: preprocessed uint8 RGB, image_size^2 * 3 bytes each.
Calibration calibrate(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                      const Recipe& recipe, bool progress);

// Stream quantization grid shared by calibration and quantization.
struct StreamGrid {
  int32_t qmin, qmax, zero_point;
  double base_scale;  // s: channel c has scale s * 2^alpha_c
};
StreamGrid stream_grid(const Range& r, int bits, bool pts);

// uint8 asymmetric quantizer of a range (zero always representable).
struct ActQuant {
  double scale;
  int32_t zero_point;
};
ActQuant act_quant(const Range& r);

}  // namespace vitint::convert
