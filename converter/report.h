// Per-layer quantization statistics of a converted model (vitint-convert
// --report): for every activation quantizer, its range, the outlier channels
// of the FP32 values it sees and its quantization error on the calibration
// images, so that a user can see which layer hurts.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "converter/calibrate.h"

namespace vitint::convert {

struct SiteReport {
  std::string name;       // "blocks.3.ln1", "blocks.3.in" (residual stream), "head.in", ...
  std::string kind;       // stream, ln1, q, k, v, attn, attn_out, ln2, gelu, head_in
  int block = -1;         // -1: not in a block
  std::string quantizer;  // e.g. "uint8 per channel (folded, a=0.50)", "int16 PTS"
  int bits = 8;
  double folding = -1;    // exponent a of folded per-channel scales, -1 if none
  // The per-tensor quantizer the calibrator chose (for folded per-channel
  // quantizers: the tensor range they are derived from).
  double range_min = 0, range_max = 0, scale = 0;
  int zero_point = 0;
  double observed_min = 0, observed_max = 0;  // of the FP32 values
  int channels = 0;
  // Channels whose max |x| exceeds kOutlierFactor x the median channel max |x|.
  int outlier_channels = 0;
  double max_median_ratio = 0;                 // largest channel max |x| / median
  std::vector<std::pair<int, double>> top_channels;  // (channel, max |x|), largest first
  // 10 log10(sum x^2 / sum (x - Q(x))^2) over the calibration images, for
  // the quantizer as built, and for the plain per-tensor quantizer of the
  // same range (no per-channel scales, no PTS); +inf as 1e9 for no error.
  double sqnr_db = 0, sqnr_tensor_db = 0;
  double clipped_percent = 0;  // values outside the representable range (attention: nonzero -> 0)
};

struct Report {
  std::string architecture;
  Recipe recipe;
  int images = 0;
  std::vector<SiteReport> sites;
};

constexpr double kOutlierFactor = 8.0;

// model_metadata: the converted model's metadata (calibration.channel_folding
// gives the folded channel scales as quantize.cpp chose them).
Report build_report(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                    const Calibration& cal, const Recipe& recipe, const nlohmann::json& model_metadata,
                    bool progress);
nlohmann::json report_json(const Report& report);
// A fixed-width table, one line per site, then the worst sites.
std::string report_table(const Report& report);

}  // namespace vitint::convert
