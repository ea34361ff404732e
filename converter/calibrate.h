// Calibration: run the FP32 reference over calibration images and derive the
// ranges of every activation quantizer (and PTS channel shifts of the
// residual stream) with one of FQ-ViT's calibrators (docs/accuracy.md says
// how each is computed here).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "converter/reference.h"

namespace vitint::convert {

struct Recipe {
  std::string method = "minmax";  // activation calibrator: minmax, ema, percentile, omse
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
  // One grid for every residual-stream point: the union of their ranges and
  // one PTS alpha per channel (least summed error over the points). Each
  // residual add's skip term is then the stream's code itself, and the
  // runtime's 16-bit residual add (kernels::residual_add16) runs it. Off:
  // a grid per point (FQ-ViT), the skip term an exact dyadic rescale.
  bool shared_stream = true;
};

// The recipe's switches as JSON (model metadata, tool output, reports).
nlohmann::json recipe_json(const Recipe& recipe);

struct Range {
  double min = 0;
  double max = 0;
  double mean = 0;     // E[x], for bias correction
};

// The model's residual-stream quantization points (models/vit_spec.h): 2b is
// block b's input (the final norm's input is 2 * depth), 2b + 1 its middle,
// then the embedding of a pre-norm ViT and the final norm's output of one
// pooled after it.
class StreamPoints {
 public:
  explicit StreamPoints(const VitConfig& c);
  int count() const;
  // The point observed at `site` of `block` (a stream site: block input or
  // middle, final norm input, embedding, final norm output).
  int point(Site site, int block) const;
  // The site and block observed at point p.
  std::pair<Site, int> site(int p) const;

 private:
  int depth_;
  bool pre_norm_, norm_out_;
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
  // StreamPoints(config).count() stream points.
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
// One channel's quantizer under per-channel folding with strength a in [0, 1]:
// scale s_c^a * s_t^(1 - a) (s_c = act_quant(channel).scale, s_t the tensor's
// scale), the zero point that keeps the channel's minimum representable.
ActQuant folded_channel_quant(const Range& channel, double tensor_scale, double a);

// ---------------------------------------------------------------------------
// The calibrators' building blocks (FQ-ViT's definitions), public for the
// tests and the --report statistics.
namespace calib {

constexpr const char* kMethods[] = {"minmax", "ema", "percentile", "omse"};
bool is_method(const std::string& name);
// EMA: max <- max + 0.01 * (cur - max) (the same for min) after the first
// mini-batch; the calibration images are split into kEmaBatches batches in
// image order (FQ-ViT runs one EMA step per batch of its calibration loader).
constexpr double kEmaMomentum = 0.01;
constexpr int kEmaBatches = 10;
// Percentile: the kPercentile and 1 - kPercentile quantiles per tensor.
constexpr double kPercentile = 1e-5;
// OMSE: (min, max) * (1 - kOmseStep * i), i = 0 .. kOmseSteps - 1.
constexpr int kOmseSteps = 90;
constexpr double kOmseStep = 0.01;

// Mini-batch of image i out of n (the EMA's batches: consecutive images).
int ema_batch(int image, int images);
// EMA of per-batch (min, max) pairs in batch order.
std::pair<double, double> ema(const std::vector<std::pair<double, double>>& batch_min_max);

// A uniform quantizer: q = clamp(round(x / scale) + zero_point, qmin, qmax).
struct Grid {
  double scale = 1;
  int32_t zero_point = 0, qmin = 0, qmax = 255;
  double fake(double x) const;  // quantize-dequantize
};
// The grid of an activation range: bits 8 = act_quant (uint8), bits 16 = a
// 16-bit stream without PTS (stream_grid(r, 16, false)).
Grid grid_for(const Range& r, int bits);

// The k largest and k smallest of all values added, exactly (the result
// does not depend on the order of add / merge calls).
class Tails {
 public:
  explicit Tails(size_t k = 0) : k_(k) {}
  void add(float v) {
    if (k_ == 0) return;
    if (top_.size() < k_ || v > top_.front()) push_top(v);
    if (bottom_.size() < k_ || v < bottom_.front()) push_bottom(v);
  }
  void merge(const Tails& o);
  size_t k() const { return k_; }
  std::vector<float> top() const;     // descending
  std::vector<float> bottom() const;  // ascending

 private:
  void push_top(float v);
  void push_bottom(float v);
  size_t k_;
  std::vector<float> top_, bottom_;  // heaps: top_ min-heap, bottom_ max-heap
};
// The tail size that quantile(t, n, kPercentile) and (1 - kPercentile) need.
size_t percentile_tail(int64_t n);
// torch.quantile / numpy.percentile (linear interpolation) of n values at
// probability p, from their tails; throws if the order statistics needed are
// not among them.
double quantile(const Tails& t, int64_t n, double p);

// Counts of values in `bins` equal bins over [lo, hi] (values outside go to
// the end bins), for the OMSE search on a whole tensor.
class Histogram {
 public:
  Histogram() = default;
  Histogram(double lo, double hi, int bins);
  void add(const float* x, size_t n);
  void add(float x) {
    const double u = (double(x) - lo_) * inv_width_;
    const int64_t b = u > 0 ? (u < double(bins_) ? static_cast<int64_t>(u) : bins_ - 1) : 0;  // NaN: bin 0
    ++counts_[static_cast<size_t>(b)];
  }
  void merge(const Histogram& o);
  int64_t total() const;
  // Sum over the values of (x - g.fake(x))^2, values uniform within a bin
  // (exact integral of the quantization error over each bin).
  double sq_error(const Grid& g) const;

 private:
  double lo_ = 0, hi_ = 0, inv_width_ = 0;
  int bins_ = 0;
  std::vector<int64_t> counts_;
};

// OMSE: the candidate (minmax.min, minmax.max) * (1 - 0.01 i) whose grid
// (grid_for(., bits)) has the least squared error: on a histogram of the
// tensor, or on weighted values (value, weight). The first minimum wins.
Range omse(const Range& minmax, const Histogram& h, int bits);
Range omse(const Range& minmax, const std::vector<std::pair<float, double>>& values, int bits);

}  // namespace calib

// ---------------------------------------------------------------------------
// Runs the FP32 reference over all images on every core (up to 16 threads).
// Worker t drives observers[t] (set .image before each forward). What an
// observer adds to .sums during one image (zeroed before it) is added into
// *totals in image order, so floating-point totals do not depend on the
// thread schedule or count; other statistics must be order-independent
// (min/max, exact tails, integer counts).
class PassObserver : public Observer {
 public:
  int image = 0;
  std::vector<double> sums;  // the pass's layout; sized by the observer's owner
};
unsigned calibration_threads();
void forward_images(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                    const std::vector<PassObserver*>& observers, std::vector<double>* totals,
                    const std::string& label, bool progress);
// forward_images with make() observers, one per calibration thread; returns
// them (their order-independent statistics still to be merged).
template <class Obs, class Make>
std::vector<Obs> run_pass(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images, Make make,
                          std::vector<double>* totals, const std::string& label, bool progress) {
  std::vector<Obs> obs;
  const unsigned threads = std::min<unsigned>(calibration_threads(), static_cast<unsigned>(images.size()));
  for (unsigned t = 0; t < threads; ++t) obs.push_back(make());
  std::vector<PassObserver*> ptrs;
  for (Obs& o : obs) ptrs.push_back(&o);
  forward_images(model, images, ptrs, totals, label, progress);
  return obs;
}

}  // namespace vitint::convert
