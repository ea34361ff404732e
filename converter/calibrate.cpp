#include "converter/calibrate.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "converter/dataset.h"
#include "models/vit_spec.h"
#include "vitint/error.h"

namespace vitint::convert {
namespace vit = models::vit;

StreamPoints::StreamPoints(const VitConfig& c)
    : depth_(c.depth), pre_norm_(c.pre_norm), norm_out_(c.norm_before_pool()) {}

int StreamPoints::count() const { return vit::stream_points(depth_, pre_norm_, norm_out_); }

int StreamPoints::point(Site site, int block) const {
  if (site == Site::kEmbedOut) return vit::embed_point(depth_);
  if (site == Site::kNormOut) return vit::norm_out_point(depth_, pre_norm_);
  return 2 * block + (site == Site::kBlockMid ? 1 : 0);
}

std::pair<Site, int> StreamPoints::site(int p) const {
  if (pre_norm_ && p == vit::embed_point(depth_)) return {Site::kEmbedOut, depth_};
  if (norm_out_ && p == vit::norm_out_point(depth_, pre_norm_)) return {Site::kNormOut, depth_};
  if (p == 2 * depth_) return {Site::kFinalNormIn, depth_};
  return {p % 2 == 0 ? Site::kBlockInput : Site::kBlockMid, p / 2};
}

StreamGrid stream_grid(const Range& r, int bits, bool pts) {
  StreamGrid g{};
  g.qmin = bits == 16 ? -32768 : 0;
  g.qmax = bits == 16 ? 32767 : 255;
  const double lo = std::min(r.min, 0.0), hi = std::max(r.max, 0.0);
  const double full = std::max(hi - lo, 1e-8) / (g.qmax - g.qmin);
  g.zero_point = static_cast<int32_t>(std::clamp<double>(g.qmin - std::round(lo / full), g.qmin, g.qmax));
  // FQ-ViT: the zero point comes from the full-range scale, channels use s = full / 8 * 2^alpha.
  g.base_scale = pts ? full / 8.0 : full;
  return g;
}

ActQuant act_quant(const Range& r) {
  const double lo = std::min(r.min, 0.0), hi = std::max(r.max, 0.0);
  ActQuant q{};
  q.scale = std::max(hi - lo, 1e-8) / 255.0;
  q.zero_point = static_cast<int32_t>(std::clamp<double>(-std::round(lo / q.scale), 0, 255));
  return q;
}

ActQuant folded_channel_quant(const Range& channel, double tensor_scale, double a) {
  const double sc = std::pow(act_quant(channel).scale, a) * std::pow(tensor_scale, 1.0 - a);
  return {sc, static_cast<int32_t>(std::clamp(-std::round(std::min(channel.min, 0.0) / sc), 0.0, 255.0))};
}

// ---------------------------------------------------------------------------
namespace calib {

bool is_method(const std::string& name) {
  return std::any_of(std::begin(kMethods), std::end(kMethods), [&](const char* m) { return name == m; });
}

int ema_batch(int image, int images) {
  return static_cast<int>(int64_t{image} * kEmaBatches / std::max(images, 1));
}

std::pair<double, double> ema(const std::vector<std::pair<double, double>>& batch_min_max) {
  if (batch_min_max.empty()) throw Error("calib::ema: no batches");
  std::pair<double, double> m = batch_min_max.front();
  for (size_t i = 1; i < batch_min_max.size(); ++i) {
    m.first += kEmaMomentum * (batch_min_max[i].first - m.first);
    m.second += kEmaMomentum * (batch_min_max[i].second - m.second);
  }
  return m;
}

double Grid::fake(double x) const {
  const double q = std::clamp(std::round(x / scale) + zero_point, double(qmin), double(qmax));
  return (q - zero_point) * scale;
}

Grid grid_for(const Range& r, int bits) {
  if (bits == 16) {
    const StreamGrid s = stream_grid(r, 16, false);
    return {s.base_scale, s.zero_point, s.qmin, s.qmax};
  }
  VITINT_ASSERT(bits == 8);
  const ActQuant a = act_quant(r);
  return {a.scale, a.zero_point, 0, 255};
}

void Tails::push_top(float v) {
  if (top_.size() == k_) {
    if (k_ == 0) return;
    std::pop_heap(top_.begin(), top_.end(), std::greater<float>());
    top_.back() = v;
  } else {
    top_.push_back(v);
  }
  std::push_heap(top_.begin(), top_.end(), std::greater<float>());
}

void Tails::push_bottom(float v) {
  if (bottom_.size() == k_) {
    if (k_ == 0) return;
    std::pop_heap(bottom_.begin(), bottom_.end());
    bottom_.back() = v;
  } else {
    bottom_.push_back(v);
  }
  std::push_heap(bottom_.begin(), bottom_.end());
}

void Tails::merge(const Tails& o) {
  VITINT_ASSERT(o.k_ == k_);
  if (k_ == 0) return;
  for (float v : o.top_)
    if (top_.size() < k_ || v > top_.front()) push_top(v);
  for (float v : o.bottom_)
    if (bottom_.size() < k_ || v < bottom_.front()) push_bottom(v);
}

std::vector<float> Tails::top() const {
  std::vector<float> v = top_;
  std::sort(v.begin(), v.end(), std::greater<float>());
  return v;
}

std::vector<float> Tails::bottom() const {
  std::vector<float> v = bottom_;
  std::sort(v.begin(), v.end());
  return v;
}

size_t percentile_tail(int64_t n) { return static_cast<size_t>(std::ceil(kPercentile * static_cast<double>(n))) + 2; }

double quantile(const Tails& t, int64_t n, double p) {
  if (n <= 0 || !(p >= 0 && p <= 1)) throw Error("calib::quantile: needs n > 0 and p in [0, 1]");
  const std::vector<float> top = t.top(), bottom = t.bottom();
  auto at = [&](int64_t i) -> double {  // i-th smallest of the n values
    if (i < static_cast<int64_t>(bottom.size())) return bottom[static_cast<size_t>(i)];
    const int64_t from_top = n - 1 - i;
    if (from_top >= 0 && from_top < static_cast<int64_t>(top.size())) return top[static_cast<size_t>(from_top)];
    throw Error("calib::quantile: order statistic " + std::to_string(i) + " of " + std::to_string(n) +
                " is not among the kept tails (internal error)");
  };
  const double pos = p * static_cast<double>(n - 1);
  const auto i = static_cast<int64_t>(std::floor(pos));
  const double frac = pos - static_cast<double>(i);
  const double a = at(i);
  if (frac == 0 || i + 1 >= n) return a;
  return a + frac * (at(i + 1) - a);
}

Histogram::Histogram(double lo, double hi, int bins)
    : lo_(lo), hi_(std::max(hi, lo)), bins_(bins), counts_(static_cast<size_t>(bins), 0) {
  VITINT_ASSERT(bins > 0);
  inv_width_ = hi_ > lo_ ? bins / (hi_ - lo_) : 0.0;
}

void Histogram::add(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) add(x[i]);
}

void Histogram::merge(const Histogram& o) {
  VITINT_ASSERT(o.bins_ == bins_ && o.lo_ == lo_ && o.hi_ == hi_);
  for (size_t b = 0; b < counts_.size(); ++b) counts_[b] += o.counts_[b];
}

int64_t Histogram::total() const {
  int64_t t = 0;
  for (int64_t c : counts_) t += c;
  return t;
}

double Histogram::sq_error(const Grid& g) const {
  if (inv_width_ == 0) {  // all values equal lo_
    const double e = lo_ - g.fake(lo_);
    return double(total()) * e * e;
  }
  // P(x) = integral of (t - fake(t))^2 dt from L: clipped below L, sawtooth
  // rounding error on [L, U], clipped above U.
  const double s = g.scale, s3 = s * s * s;
  const double lo_q = (g.qmin - g.zero_point) * s, hi_q = (g.qmax - g.zero_point) * s;
  const double L = lo_q - s / 2, U = hi_q + s / 2;
  const double at_u = double(g.qmax - g.qmin + 1) * s3 / 12;
  auto P = [&](double x) {
    if (x < L) {
      const double d = x - lo_q;
      return (d * d * d + s3 / 8) / 3;
    }
    if (x > U) {
      const double d = x - hi_q;
      return at_u + (d * d * d - s3 / 8) / 3;
    }
    const double y = (x - L) / s, cell = std::floor(y), f = y - cell - 0.5;
    return cell * s3 / 12 + s3 * (f * f * f + 0.125) / 3;
  };
  const double width = (hi_ - lo_) / bins_;
  double err = 0, prev = P(lo_);
  for (int b = 0; b < bins_; ++b) {
    const double next = P(b + 1 == bins_ ? hi_ : lo_ + (b + 1) * width);
    const int64_t c = counts_[static_cast<size_t>(b)];
    if (c) err += double(c) * (next - prev) / width;
    prev = next;
  }
  return err;
}

namespace {
template <class Err>
Range omse_search(const Range& minmax, int bits, Err err) {
  Range best = minmax;
  double best_err = std::numeric_limits<double>::infinity();
  for (int i = 0; i < kOmseSteps; ++i) {
    const double f = 1.0 - kOmseStep * i;
    Range r = minmax;
    r.min = minmax.min * f;
    r.max = minmax.max * f;
    const double e = err(grid_for(r, bits));
    if (e < best_err) {
      best_err = e;
      best = r;
    }
  }
  return best;
}
}  // namespace

Range omse(const Range& minmax, const Histogram& h, int bits) {
  return omse_search(minmax, bits, [&](const Grid& g) { return h.sq_error(g); });
}

Range omse(const Range& minmax, const std::vector<std::pair<float, double>>& values, int bits) {
  return omse_search(minmax, bits, [&](const Grid& g) {
    double e = 0;
    for (const auto& [x, w] : values) {
      const double d = double(x) - g.fake(x);
      e += w * d * d;
    }
    return e;
  });
}

}  // namespace calib

// ---------------------------------------------------------------------------
unsigned calibration_threads() { return std::max(1u, std::min(std::thread::hardware_concurrency(), 16u)); }

void forward_images(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                    const std::vector<PassObserver*>& observers, std::vector<double>* totals,
                    const std::string& label, bool progress) {
  VITINT_ASSERT(!observers.empty());
  const size_t nsums = observers[0]->sums.size();
  for (PassObserver* o : observers) VITINT_ASSERT(o->sums.size() == nsums);
  if (totals) totals->assign(nsums, 0.0);
  const int count = static_cast<int>(images.size());
  std::atomic<int> next{0}, done{0};
  Progress bar(label, count, progress);
  std::mutex mutex;  // guards pending, spare, committed, *totals
  std::map<int, std::vector<double>> pending;
  std::vector<std::vector<double>> spare;
  int committed = 0;
  run_threads(static_cast<unsigned>(observers.size()), [&](unsigned t) {
    PassObserver& obs = *observers[t];
    for (int i; (i = next++) < count;) {
      obs.image = i;
      std::fill(obs.sums.begin(), obs.sums.end(), 0.0);
      model.forward(images[static_cast<size_t>(i)].data(), &obs);
      if (nsums) {
        std::lock_guard<std::mutex> lock(mutex);
        pending.emplace(i, std::move(obs.sums));
        // Image order: totals are the same whatever finished first.
        while (!pending.empty() && pending.begin()->first == committed) {
          std::vector<double>& s = pending.begin()->second;
          if (totals)
            for (size_t k = 0; k < nsums; ++k) (*totals)[k] += s[k];
          spare.push_back(std::move(s));
          pending.erase(pending.begin());
          ++committed;
        }
        if (spare.empty()) {
          obs.sums.assign(nsums, 0.0);
        } else {
          obs.sums = std::move(spare.back());
          spare.pop_back();
        }
      }
      ++done;
      if (t == 0) bar.update(done);
    }
  }, [&] { next = count; });
  bar.finish();
}

namespace {

using calib::Histogram;
using calib::Tails;

// Rows kept per site for the folding choice (quantize.cpp) and the
// per-channel OMSE estimate.
constexpr int64_t kSampleRows = 512;
// Per-channel exact tails kept for the per-channel OMSE estimate.
constexpr size_t kChannelTail = 16;
constexpr int kHistogramBins = 1 << 14;

bool is_stream(Site s) {
  return s == Site::kBlockInput || s == Site::kBlockMid || s == Site::kFinalNormIn || s == Site::kEmbedOut ||
         s == Site::kNormOut;
}
// Sites whose per-channel ranges the quantizer may use (Calibration::*_channels).
bool is_channel_site(Site s) {
  return s == Site::kLn1Out || s == Site::kLn2Out || s == Site::kGeluOut || s == Site::kAttnOut || s == Site::kHeadIn;
}

// "blocks.3 GELU output"-style name of site index i (Plan::index) for messages.
std::string site_label(size_t i, int depth) {
  static const char* const kNames[] = {"input",        "norm1 output", "q",           "k",
                                       "v",            "logits",       "attention output",
                                       "stream after attention",       "norm2 output", "fc1 output",
                                       "GELU output",  "final norm input", "head input",
                                       "embedding (norm_pre input)", "final norm output"};
  static_assert(std::size(kNames) == kSiteCount);
  const auto per_site = static_cast<size_t>(depth) + 1;
  const std::string name = kNames[i / per_site];
  const auto block = static_cast<int>(i % per_site);
  return block < depth ? "blocks." + std::to_string(block) + " " + name : name;
}

// Where each observed tensor's statistics live.
struct SitePlan {
  bool tracked = false;
  Site site = Site::kBlockInput;
  int rows = 0, cols = 0;
  size_t sums = 0;           // offset of the [cols] per-channel sums
  bool channel = false;      // per-channel ranges wanted
  bool quantized = true;     // false: streams whose range PTS fixes as min/max (no method)
  size_t tensor_tail = 0;    // percentile tails of the whole tensor
  size_t channel_tail = 0;   // per-channel tails
  int64_t values() const { return int64_t{rows} * cols; }
};

struct Plan {
  int depth = 0;
  int images = 0;
  std::string method;
  std::vector<SitePlan> sites;  // [site * (depth + 1) + block]
  size_t nsums = 0;
  size_t index(Site s, int block) const { return static_cast<size_t>(static_cast<int>(s) * (depth + 1) + block); }

  Plan(const VitConfig& cfg, int image_count, const Recipe& recipe)
      : depth(cfg.depth), images(image_count), method(recipe.method), sites(static_cast<size_t>(kSiteCount) * (cfg.depth + 1)) {
    const int n = cfg.num_tokens(), d = cfg.embed_dim;
    auto add = [&](Site s, int block, int rows, int cols) {
      SitePlan& p = sites[index(s, block)];
      p.tracked = true;
      p.site = s;
      p.rows = rows;
      p.cols = cols;
      p.sums = nsums;
      nsums += static_cast<size_t>(cols);
      p.channel = is_channel_site(s);
      // With PTS, FQ-ViT's LayerNorm-input quantizers (the residual stream)
      // use its PTF observer, a running min/max, whatever the calibrator.
      p.quantized = !(is_stream(s) && recipe.pts);
      const int64_t values = int64_t{images} * rows * cols, per_channel = int64_t{images} * rows;
      if (p.quantized && method == "percentile") p.tensor_tail = calib::percentile_tail(values);
      if (p.channel && method == "percentile") p.channel_tail = calib::percentile_tail(per_channel);
      if (p.channel && method == "omse") p.channel_tail = std::max(kChannelTail, calib::percentile_tail(per_channel));
    };
    for (int b = 0; b < depth; ++b)
      for (Site s : {Site::kBlockInput, Site::kLn1Out, Site::kQ, Site::kK, Site::kV, Site::kAttnOut, Site::kBlockMid,
                     Site::kLn2Out, Site::kGeluOut})
        add(s, b, n, s == Site::kGeluOut ? cfg.mlp_hidden : d);
    add(Site::kFinalNormIn, depth, n, d);
    add(Site::kHeadIn, depth, cfg.head_rows(), d);
    if (cfg.pre_norm) add(Site::kEmbedOut, depth, n, d);
    if (cfg.norm_before_pool()) add(Site::kNormOut, depth, cfg.num_patches(), d);
  }
};

// Pass 1: per-channel min/max, sums, EMA mini-batch ranges, exact tails and
// sampled rows, as the method needs.
class StatsObserver final : public PassObserver {
 public:
  struct State {
    std::vector<float> min, max;              // [cols]
    std::vector<float> batch_min, batch_max;  // [kEmaBatches][cols] (EMA)
    Tails tails;                              // whole tensor (percentile)
    std::vector<Tails> channel_tails;         // [cols]
    std::vector<std::pair<int64_t, std::vector<float>>> rows;  // (key, row)
  };

  explicit StatsObserver(const Plan& plan) : plan_(plan), state_(plan.sites.size()) {
    sums.assign(plan.nsums, 0.0);
    const bool ema = plan.method == "ema";
    for (size_t i = 0; i < plan.sites.size(); ++i) {
      const SitePlan& p = plan.sites[i];
      if (!p.tracked) continue;
      State& s = state_[i];
      const auto cols = static_cast<size_t>(p.cols);
      s.min.assign(cols, std::numeric_limits<float>::infinity());
      s.max.assign(cols, -std::numeric_limits<float>::infinity());
      if (ema) {
        s.batch_min.assign(cols * calib::kEmaBatches, std::numeric_limits<float>::infinity());
        s.batch_max.assign(cols * calib::kEmaBatches, -std::numeric_limits<float>::infinity());
      }
      s.tails = Tails(p.tensor_tail);
      if (p.channel_tail) s.channel_tails.assign(cols, Tails(p.channel_tail));
    }
  }

  void observe(Site site, int block, const float* data, int rows, int cols) override {
    if (site == Site::kAttnLogits || site == Site::kFc1Out) return;
    const size_t idx = plan_.index(site, block);
    const SitePlan& p = plan_.sites[idx];
    VITINT_ASSERT(p.tracked && p.rows == rows && p.cols == cols);
    State& s = state_[idx];
    const auto nc = static_cast<size_t>(cols);
    double* sum = sums.data() + p.sums;
    for (int r = 0; r < rows; ++r) {
      const float* x = data + static_cast<size_t>(r) * nc;
      for (size_t c = 0; c < nc; ++c) {
        const float v = x[c];
        s.min[c] = std::min(s.min[c], v);
        s.max[c] = std::max(s.max[c], v);
        sum[c] += v;
      }
    }
    if (!s.batch_min.empty()) {
      float* bmin = &s.batch_min[static_cast<size_t>(calib::ema_batch(image, plan_.images)) * nc];
      float* bmax = &s.batch_max[static_cast<size_t>(calib::ema_batch(image, plan_.images)) * nc];
      for (int r = 0; r < rows; ++r)
        for (size_t c = 0; c < nc; ++c) {
          bmin[c] = std::min(bmin[c], data[static_cast<size_t>(r) * nc + c]);
          bmax[c] = std::max(bmax[c], data[static_cast<size_t>(r) * nc + c]);
        }
    }
    if (s.tails.k())
      for (size_t i = 0; i < static_cast<size_t>(rows) * nc; ++i) s.tails.add(data[i]);
    if (!s.channel_tails.empty())
      for (int r = 0; r < rows; ++r)
        for (size_t c = 0; c < nc; ++c) s.channel_tails[c].add(data[static_cast<size_t>(r) * nc + c]);
    if (p.channel) {
      // About kSampleRows rows per site, the same ones whatever the thread schedule.
      const int64_t stride = std::max<int64_t>(1, int64_t{plan_.images} * rows / kSampleRows);
      for (int r = 0; r < rows; ++r) {
        const int64_t key = int64_t{image} * rows + r;
        if (key % stride == 0)
          s.rows.emplace_back(key, std::vector<float>(data + static_cast<size_t>(r) * nc, data + static_cast<size_t>(r + 1) * nc));
      }
    }
  }

  void merge(StatsObserver& o) {
    for (size_t i = 0; i < state_.size(); ++i) {
      if (!plan_.sites[i].tracked) continue;
      State& a = state_[i];
      State& b = o.state_[i];
      for (size_t c = 0; c < a.min.size(); ++c) {
        a.min[c] = std::min(a.min[c], b.min[c]);
        a.max[c] = std::max(a.max[c], b.max[c]);
      }
      for (size_t c = 0; c < a.batch_min.size(); ++c) {
        a.batch_min[c] = std::min(a.batch_min[c], b.batch_min[c]);
        a.batch_max[c] = std::max(a.batch_max[c], b.batch_max[c]);
      }
      a.tails.merge(b.tails);
      for (size_t c = 0; c < a.channel_tails.size(); ++c) a.channel_tails[c].merge(b.channel_tails[c]);
      a.rows.insert(a.rows.end(), std::make_move_iterator(b.rows.begin()), std::make_move_iterator(b.rows.end()));
    }
  }

  State& state(size_t idx) { return state_[idx]; }

 private:
  const Plan& plan_;
  std::vector<State> state_;
};

// Pass 2 (OMSE): a histogram of every quantized tensor over its min/max.
class HistogramObserver final : public PassObserver {
 public:
  HistogramObserver(const Plan& plan, const std::vector<Range>& minmax) : plan_(plan), hist_(plan.sites.size()) {
    for (size_t i = 0; i < plan.sites.size(); ++i)
      if (plan.sites[i].tracked && plan.sites[i].quantized)
        hist_[i] = Histogram(minmax[i].min, minmax[i].max, kHistogramBins);
  }
  void observe(Site site, int block, const float* data, int rows, int cols) override {
    if (site == Site::kAttnLogits || site == Site::kFc1Out) return;
    const size_t idx = plan_.index(site, block);
    if (plan_.sites[idx].quantized) hist_[idx].add(data, static_cast<size_t>(rows) * static_cast<size_t>(cols));
  }
  void merge(const HistogramObserver& o) {
    for (size_t i = 0; i < hist_.size(); ++i)
      if (plan_.sites[i].tracked && plan_.sites[i].quantized) hist_[i].merge(o.hist_[i]);
  }
  const Histogram& at(size_t idx) const { return hist_[idx]; }

 private:
  const Plan& plan_;
  std::vector<Histogram> hist_;
};

// Pass 3: for every stream point and channel, the squared error of
// quantize-dequantize with each shift alpha in 0..3 (FQ-ViT's PTS search).
class PtsObserver final : public PassObserver {
 public:
  PtsObserver(const std::vector<StreamGrid>& grids, int dim, StreamPoints points)
      : grids_(grids), dim_(dim), points_(points) {
    sums.assign(grids.size() * static_cast<size_t>(dim) * 4, 0.0);
  }
  void observe(Site site, int block, const float* data, int rows, int cols) override {
    if (!is_stream(site)) return;
    const int point = points_.point(site, block);
    const StreamGrid& g = grids_[static_cast<size_t>(point)];
    double* err = &sums[static_cast<size_t>(point) * dim_ * 4];
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const double x = data[static_cast<size_t>(r) * cols + c];
        for (int a = 0; a < 4; ++a) {
          const double s = g.base_scale * (1 << a);
          const double q = std::clamp(std::round(x / s) + g.zero_point, double(g.qmin), double(g.qmax));
          const double e = (q - g.zero_point) * s - x;
          err[c * 4 + a] += e * e;
        }
      }
  }

 private:
  const std::vector<StreamGrid>& grids_;
  int dim_;
  StreamPoints points_;
};

std::vector<uint8_t> best_alpha(const std::vector<double>& err, int point, int dim) {
  std::vector<uint8_t> alpha(static_cast<size_t>(dim));
  const double* e = &err[static_cast<size_t>(point) * dim * 4];
  for (int c = 0; c < dim; ++c)
    alpha[static_cast<size_t>(c)] = static_cast<uint8_t>(std::min_element(e + c * 4, e + c * 4 + 4) - (e + c * 4));
  return alpha;
}

// Runs fn(i) for i in [0, n) on the calibration threads (results must go to
// slot i, so they do not depend on the schedule).
void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  std::atomic<size_t> next{0};
  run_threads(calibration_threads(), [&](unsigned) { for (size_t i; (i = next++) < n;) fn(i); }, [&] { next = n; });
}

// Per-channel OMSE input: the channel's exact tails (weight 1) and its
// sampled values strictly between them standing for the remaining values
// (stratified estimate); all sampled values when every row was sampled.
std::vector<std::pair<float, double>> channel_values(const Tails& tails, const RowSample& sample, int c, int64_t n) {
  std::vector<std::pair<float, double>> out;
  const auto cols = static_cast<size_t>(sample.cols);
  auto value = [&](int i) { return sample.rows[static_cast<size_t>(i) * cols + static_cast<size_t>(c)]; };
  if (sample.count >= n || n <= static_cast<int64_t>(2 * tails.k())) {
    for (int i = 0; i < sample.count; ++i) out.emplace_back(value(i), 1.0);
    return out;
  }
  const std::vector<float> top = tails.top(), bottom = tails.bottom();
  const float hi = top.back(), lo = bottom.back();
  for (float v : top) out.emplace_back(v, 1.0);
  for (float v : bottom) out.emplace_back(v, 1.0);
  const size_t first_mid = out.size();
  for (int i = 0; i < sample.count; ++i)
    if (value(i) > lo && value(i) < hi) out.emplace_back(value(i), 1.0);
  const size_t mid = out.size() - first_mid;
  const double rest = static_cast<double>(n) - static_cast<double>(top.size() + bottom.size());
  for (size_t i = first_mid; i < out.size(); ++i) out[i].second = rest / static_cast<double>(mid);
  return out;
}

}  // namespace

Calibration calibrate(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                      const Recipe& recipe, bool progress) {
  if (!calib::is_method(recipe.method))
    throw Error("calibration method '" + recipe.method + "' is unknown (available: minmax, ema, percentile, omse)");
  if (images.empty()) throw Error("calibration needs at least one image");
  const VitConfig& cfg = model.config();
  const int depth = cfg.depth;
  const Plan plan(cfg, static_cast<int>(images.size()), recipe);
  const std::string& method = recipe.method;

  std::vector<double> sums;
  auto stats = run_pass<StatsObserver>(model, images, [&] { return StatsObserver(plan); }, &sums,
                                       "calibrating ranges", progress);
  for (size_t t = 1; t < stats.size(); ++t) stats[0].merge(stats[t]);
  StatsObserver& st = stats[0];

  // Non-finite activations, reported at the first site in forward order
  // (block by block); NaN escapes min/max but not the sums.
  for (int b = 0; b <= depth; ++b) {
    for (int k = 0; k < kSiteCount; ++k) {
      const size_t i = plan.index(static_cast<Site>(k), b);
      const SitePlan& p = plan.sites[i];
      if (!p.tracked) continue;
      const StatsObserver::State& s = st.state(i);
      for (int c = 0; c < p.cols; ++c) {
        const auto cs = static_cast<size_t>(c);
        if (!std::isfinite(s.min[cs]) || !std::isfinite(s.max[cs]) || !std::isfinite(sums[p.sums + cs]))
          throw Error("calibration: the FP32 forward gave non-finite activations (NaN or infinity) at " +
                      site_label(i, depth) + ", channel " + std::to_string(c) +
                      ": the checkpoint's weights are out of range (corrupt?)");
      }
    }
  }

  // Min/max and means per site (tensor) and per channel.
  const size_t nsites = plan.sites.size();
  std::vector<Range> minmax(nsites);
  std::vector<std::vector<Range>> ch_minmax(nsites);
  std::vector<RowSample> samples(nsites);
  for (size_t i = 0; i < nsites; ++i) {
    const SitePlan& p = plan.sites[i];
    if (!p.tracked) continue;
    StatsObserver::State& s = st.state(i);
    const double n = double(plan.images) * p.rows;
    Range all{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), 0};
    for (int c = 0; c < p.cols; ++c) {
      const auto cs = static_cast<size_t>(c);
      const double sum = sums[p.sums + cs];
      ch_minmax[i].push_back({s.min[cs], s.max[cs], sum / n});
      all.min = std::min(all.min, double(s.min[cs]));
      all.max = std::max(all.max, double(s.max[cs]));
      all.mean += sum;
    }
    all.mean /= n * p.cols;
    minmax[i] = all;
    if (p.channel) {
      std::sort(s.rows.begin(), s.rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
      RowSample& out = samples[i];
      out.cols = p.cols;
      for (const auto& row : s.rows) {
        out.rows.insert(out.rows.end(), row.second.begin(), row.second.end());
        ++out.count;
      }
      std::vector<std::pair<int64_t, std::vector<float>>>().swap(s.rows);
    }
  }

  // The method's ranges (the means stay those of the data).
  std::vector<Range> ranges = minmax;
  std::vector<std::vector<Range>> ch_ranges = ch_minmax;
  auto with_data_mean = [](Range r, const Range& data) {
    r.mean = data.mean;
    return r;
  };
  // Bits of a site's quantizer grid (streams without PTS: the stream's).
  auto bits_of = [&](const SitePlan& p) { return is_stream(p.site) ? recipe.residual_bits : 8; };
  if (method == "ema") {
    std::vector<int> batches;  // non-empty mini-batches in order
    for (int img = 0; img < plan.images; ++img)
      if (batches.empty() || batches.back() != calib::ema_batch(img, plan.images))
        batches.push_back(calib::ema_batch(img, plan.images));
    for (size_t i = 0; i < nsites; ++i) {
      const SitePlan& p = plan.sites[i];
      if (!p.tracked || !p.quantized) continue;
      const StatsObserver::State& s = st.state(i);
      const auto nc = static_cast<size_t>(p.cols);
      std::vector<std::pair<double, double>> tensor;
      for (int b : batches) {
        double lo = std::numeric_limits<double>::infinity(), hi = -lo;
        for (size_t c = 0; c < nc; ++c) {
          lo = std::min(lo, double(s.batch_min[static_cast<size_t>(b) * nc + c]));
          hi = std::max(hi, double(s.batch_max[static_cast<size_t>(b) * nc + c]));
        }
        tensor.emplace_back(lo, hi);
      }
      std::tie(ranges[i].min, ranges[i].max) = calib::ema(tensor);
      if (!p.channel) continue;
      for (size_t c = 0; c < nc; ++c) {
        std::vector<std::pair<double, double>> channel;
        for (int b : batches)
          channel.emplace_back(s.batch_min[static_cast<size_t>(b) * nc + c], s.batch_max[static_cast<size_t>(b) * nc + c]);
        std::tie(ch_ranges[i][c].min, ch_ranges[i][c].max) = calib::ema(channel);
      }
    }
  } else if (method == "percentile") {
    for (size_t i = 0; i < nsites; ++i) {
      const SitePlan& p = plan.sites[i];
      if (!p.tracked || !p.quantized) continue;
      const StatsObserver::State& s = st.state(i);
      const int64_t n = int64_t{plan.images} * p.values();
      ranges[i].min = calib::quantile(s.tails, n, calib::kPercentile);
      ranges[i].max = calib::quantile(s.tails, n, 1.0 - calib::kPercentile);
      for (size_t c = 0; c < s.channel_tails.size(); ++c) {
        const int64_t nc = int64_t{plan.images} * p.rows;
        ch_ranges[i][c].min = calib::quantile(s.channel_tails[c], nc, calib::kPercentile);
        ch_ranges[i][c].max = calib::quantile(s.channel_tails[c], nc, 1.0 - calib::kPercentile);
      }
    }
  } else if (method == "omse") {
    auto hists = run_pass<HistogramObserver>(model, images, [&] { return HistogramObserver(plan, minmax); }, nullptr,
                                             "calibrating OMSE histograms", progress);
    for (size_t t = 1; t < hists.size(); ++t) hists[0].merge(hists[t]);
    // Tasks: every quantized tensor, then every channel of channel sites.
    std::vector<std::pair<size_t, int>> tasks;  // (site, channel or -1)
    for (size_t i = 0; i < nsites; ++i)
      if (plan.sites[i].tracked && plan.sites[i].quantized) tasks.emplace_back(i, -1);
    for (size_t i = 0; i < nsites; ++i)
      if (plan.sites[i].tracked && plan.sites[i].channel)
        for (int c = 0; c < plan.sites[i].cols; ++c) tasks.emplace_back(i, c);
    parallel_for(tasks.size(), [&](size_t t) {
      const auto [i, c] = tasks[t];
      const SitePlan& p = plan.sites[i];
      if (c < 0) {
        ranges[i] = with_data_mean(calib::omse(minmax[i], hists[0].at(i), bits_of(p)), minmax[i]);
      } else {
        const auto cs = static_cast<size_t>(c);
        const auto values = channel_values(st.state(i).channel_tails[cs], samples[i], c, int64_t{plan.images} * p.rows);
        ch_ranges[i][cs] = with_data_mean(calib::omse(ch_minmax[i][cs], values, 8), ch_minmax[i][cs]);
      }
    });
  }

  Calibration cal;
  auto at = [&](Site s, int b) { return plan.index(s, b); };
  for (int b = 0; b < depth; ++b) {
    cal.ln1.push_back(ranges[at(Site::kLn1Out, b)]);
    cal.q.push_back(ranges[at(Site::kQ, b)]);
    cal.k.push_back(ranges[at(Site::kK, b)]);
    cal.v.push_back(ranges[at(Site::kV, b)]);
    cal.attn_out.push_back(ranges[at(Site::kAttnOut, b)]);
    cal.ln2.push_back(ranges[at(Site::kLn2Out, b)]);
    cal.gelu.push_back(ranges[at(Site::kGeluOut, b)]);
    cal.ln1_channels.push_back(ch_ranges[at(Site::kLn1Out, b)]);
    cal.ln2_channels.push_back(ch_ranges[at(Site::kLn2Out, b)]);
    cal.gelu_channels.push_back(ch_ranges[at(Site::kGeluOut, b)]);
    cal.attn_out_channels.push_back(ch_ranges[at(Site::kAttnOut, b)]);
    cal.ln1_rows.push_back(samples[at(Site::kLn1Out, b)]);
    cal.ln2_rows.push_back(samples[at(Site::kLn2Out, b)]);
    cal.gelu_rows.push_back(samples[at(Site::kGeluOut, b)]);
    cal.attn_out_rows.push_back(samples[at(Site::kAttnOut, b)]);
  }
  cal.head_in = ranges[at(Site::kHeadIn, depth)];
  cal.head_in_channels = ch_ranges[at(Site::kHeadIn, depth)];
  cal.head_in_rows = samples[at(Site::kHeadIn, depth)];
  std::vector<StreamGrid> grids;
  const StreamPoints stream_points(cfg);
  const int points = stream_points.count();
  // Each point's range, or with shared_stream their union for every point.
  auto point_range = [&](int p) {
    const auto [site, block] = stream_points.site(p);
    return ranges[at(site, block)];
  };
  Range all = point_range(0);
  for (int p = 1; p < points; ++p) {
    const Range r = point_range(p);
    all.min = std::min(all.min, r.min);
    all.max = std::max(all.max, r.max);
  }
  for (int p = 0; p < points; ++p) {
    StreamCalib sc;
    sc.range = recipe.shared_stream ? all : point_range(p);
    sc.alpha.assign(static_cast<size_t>(cfg.embed_dim), 0);
    grids.push_back(stream_grid(sc.range, recipe.residual_bits, recipe.pts));
    cal.streams.push_back(std::move(sc));
  }
  if (recipe.pts) {
    std::vector<double> err;
    run_pass<PtsObserver>(model, images, [&] { return PtsObserver(grids, cfg.embed_dim, stream_points); }, &err,
                          "calibrating PTS shifts", progress);
    if (recipe.shared_stream) {
      // One alpha per channel: the least error summed over the points.
      const size_t per_point = static_cast<size_t>(cfg.embed_dim) * 4;
      for (size_t i = per_point; i < err.size(); ++i) err[i % per_point] += err[i];
    }
    for (int p = 0; p < points; ++p)
      cal.streams[static_cast<size_t>(p)].alpha = best_alpha(err, recipe.shared_stream ? 0 : p, cfg.embed_dim);
  }
  return cal;
}

nlohmann::json recipe_json(const Recipe& r) {
  return {{"method", r.method},
          {"pts", r.pts},
          {"channel_ln", r.channel_ln},
          {"channel_gelu", r.channel_gelu},
          {"channel_attn", r.channel_attn},
          {"bias_correction", r.bias_correction},
          {"lis_normalize", r.lis_normalize},
          {"attention_bits", r.attention_bits},
          {"residual_bits", r.residual_bits},
          {"shared_stream", r.shared_stream}};
}

}  // namespace vitint::convert
