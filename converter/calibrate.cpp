#include "converter/calibrate.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "converter/dataset.h"
#include "vitint/error.h"

namespace vitint::convert {

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

namespace {

constexpr int kSiteCount = static_cast<int>(Site::kHeadIn) + 1;

bool is_stream(Site s) { return s == Site::kBlockInput || s == Site::kBlockMid || s == Site::kFinalNormIn; }
int stream_point(Site s, int block) {
  return s == Site::kBlockInput ? 2 * block : (s == Site::kBlockMid ? 2 * block + 1 : 2 * block);
}

struct MinMax {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double sum = 0;
  double sum_sq = 0;
  double count = 0;
  void add(const float* x, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const auto v = static_cast<double>(x[i]);
      min = std::min(min, v);
      max = std::max(max, v);
      sum += v;
      sum_sq += v * v;
    }
    count += static_cast<double>(n);
  }
  void merge(const MinMax& o) {
    min = std::min(min, o.min);
    max = std::max(max, o.max);
    sum += o.sum;
    sum_sq += o.sum_sq;
    count += o.count;
  }
};

// Pass 1: per-channel ranges of every site (stream points and LayerNorm
// outputs use them; PTS needs the global range first, then pass 2 picks
// channel shifts).
bool is_sampled(Site s) {
  return s == Site::kLn1Out || s == Site::kLn2Out || s == Site::kGeluOut || s == Site::kAttnOut || s == Site::kHeadIn;
}

class RangeObserver final : public Observer {
 public:
  RangeObserver(int depth, int images)
      : ranges_(static_cast<size_t>(kSiteCount) * (depth + 1)), samples_(ranges_.size()), depth_(depth), images_(images) {}
  int image = 0;  // index of the image being observed (set by forward_all)
  void observe(Site site, int block, const float* data, int rows, int cols) override {
    if (site == Site::kAttnLogits) return;
    std::vector<MinMax>& ch = channels(site, block);
    if (ch.empty()) ch.resize(static_cast<size_t>(cols));
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) ch[static_cast<size_t>(c)].add(data + static_cast<size_t>(r) * cols + c, 1);
    if (!is_sampled(site)) return;
    // About kSampleRows rows per site, the same ones whatever the thread schedule.
    constexpr int64_t kSampleRows = 512;
    const int64_t stride = std::max<int64_t>(1, int64_t{images_} * rows / kSampleRows);
    auto& out = samples_[index(site, block)];
    for (int r = 0; r < rows; ++r) {
      const int64_t key = int64_t{image} * rows + r;
      if (key % stride == 0)
        out.emplace_back(key, std::vector<float>(data + static_cast<size_t>(r) * cols, data + static_cast<size_t>(r + 1) * cols));
    }
  }
  RowSample sample(Site s, int block) {
    auto& rows = samples_[index(s, block)];
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    RowSample out;
    for (const auto& row : rows) {
      out.cols = static_cast<int>(row.second.size());
      out.rows.insert(out.rows.end(), row.second.begin(), row.second.end());
      ++out.count;
    }
    return out;
  }
  size_t index(Site s, int block) const { return static_cast<size_t>(static_cast<int>(s) * (depth_ + 1) + block); }
  std::vector<MinMax>& channels(Site s, int block) { return ranges_[index(s, block)]; }
  MinMax at(Site s, int block) {
    MinMax all;
    for (const MinMax& m : channels(s, block)) all.merge(m);
    return all;
  }
  void merge(RangeObserver& o) {
    for (size_t i = 0; i < ranges_.size(); ++i) {
      if (ranges_[i].empty()) ranges_[i].resize(o.ranges_[i].size());
      for (size_t c = 0; c < o.ranges_[i].size(); ++c) ranges_[i][c].merge(o.ranges_[i][c]);
      samples_[i].insert(samples_[i].end(), o.samples_[i].begin(), o.samples_[i].end());
    }
  }

 private:
  std::vector<std::vector<MinMax>> ranges_;
  std::vector<std::vector<std::pair<int64_t, std::vector<float>>>> samples_;
  int depth_;
  int images_;
};

// Pass 2: for every stream point and channel, the squared error of
// quantize-dequantize with each shift alpha in 0..3 (FQ-ViT's PTS search).
class PtsObserver final : public Observer {
 public:
  int image = 0;
  PtsObserver(const std::vector<StreamGrid>& grids, int dim)
      : grids_(grids), dim_(dim), err_(grids.size() * static_cast<size_t>(dim) * 4, 0.0) {}
  void observe(Site site, int block, const float* data, int rows, int cols) override {
    if (!is_stream(site)) return;
    const int point = stream_point(site, block);
    const StreamGrid& g = grids_[static_cast<size_t>(point)];
    double* err = &err_[static_cast<size_t>(point) * dim_ * 4];
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
  void merge(const PtsObserver& o) {
    for (size_t i = 0; i < err_.size(); ++i) err_[i] += o.err_[i];
  }
  std::vector<uint8_t> best(int point) const {
    std::vector<uint8_t> alpha(static_cast<size_t>(dim_));
    const double* err = &err_[static_cast<size_t>(point) * dim_ * 4];
    for (int c = 0; c < dim_; ++c)
      alpha[static_cast<size_t>(c)] = static_cast<uint8_t>(std::min_element(err + c * 4, err + c * 4 + 4) - (err + c * 4));
    return alpha;
  }

 private:
  const std::vector<StreamGrid>& grids_;
  int dim_;
  std::vector<double> err_;
};

// Runs the reference over all images on every core, one observer per thread.
template <class Obs, class Make>
std::vector<Obs> forward_all(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                             Make make, const std::string& label, bool progress) {
  const unsigned threads = std::max(1u, std::min(std::thread::hardware_concurrency(), 16u));
  std::vector<Obs> observers;
  for (unsigned t = 0; t < threads; ++t) observers.push_back(make());
  std::atomic<int> next{0}, done{0};
  Progress bar(label, static_cast<int>(images.size()), progress);
  std::vector<std::thread> pool;
  std::exception_ptr failure;
  std::mutex failure_mutex;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        for (int i; (i = next++) < static_cast<int>(images.size());) {
          observers[t].image = i;
          model.forward(images[static_cast<size_t>(i)].data(), &observers[t]);
          ++done;
          if (t == 0) bar.update(done);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::current_exception();
        next = static_cast<int>(images.size());
      }
    });
  for (auto& th : pool) th.join();
  if (failure) std::rethrow_exception(failure);
  bar.finish();
  return observers;
}

Range to_range(const MinMax& m) {
  if (!(m.min <= m.max)) throw Error("calibration observed no values at some site (internal error)");
  return {m.min, m.max, m.sum_sq / m.count, m.sum / m.count};
}

std::vector<Range> to_ranges(const std::vector<MinMax>& ms) {
  std::vector<Range> out;
  for (const MinMax& m : ms) out.push_back(to_range(m));
  return out;
}

}  // namespace

Calibration calibrate(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                      const Recipe& recipe, bool progress) {
  if (recipe.method != "minmax")
    throw Error("calibration method '" + recipe.method + "' is not implemented (available: minmax)");
  if (images.empty()) throw Error("calibration needs at least one image");
  const VitConfig& cfg = model.config();
  const int depth = cfg.depth;

  auto rangers = forward_all<RangeObserver>(model, images, [&] { return RangeObserver(depth, static_cast<int>(images.size())); },
                                            "calibrating ranges", progress);
  for (size_t t = 1; t < rangers.size(); ++t) rangers[0].merge(rangers[t]);
  RangeObserver& r = rangers[0];

  Calibration cal;
  for (int b = 0; b < depth; ++b) {
    cal.ln1.push_back(to_range(r.at(Site::kLn1Out, b)));
    cal.q.push_back(to_range(r.at(Site::kQ, b)));
    cal.k.push_back(to_range(r.at(Site::kK, b)));
    cal.v.push_back(to_range(r.at(Site::kV, b)));
    cal.attn_out.push_back(to_range(r.at(Site::kAttnOut, b)));
    cal.ln2.push_back(to_range(r.at(Site::kLn2Out, b)));
    cal.gelu.push_back(to_range(r.at(Site::kGeluOut, b)));
    cal.ln1_channels.push_back(to_ranges(r.channels(Site::kLn1Out, b)));
    cal.ln2_channels.push_back(to_ranges(r.channels(Site::kLn2Out, b)));
    cal.gelu_channels.push_back(to_ranges(r.channels(Site::kGeluOut, b)));
    cal.attn_out_channels.push_back(to_ranges(r.channels(Site::kAttnOut, b)));
    cal.ln1_rows.push_back(r.sample(Site::kLn1Out, b));
    cal.ln2_rows.push_back(r.sample(Site::kLn2Out, b));
    cal.gelu_rows.push_back(r.sample(Site::kGeluOut, b));
    cal.attn_out_rows.push_back(r.sample(Site::kAttnOut, b));
  }
  cal.head_in = to_range(r.at(Site::kHeadIn, depth));
  cal.head_in_channels = to_ranges(r.channels(Site::kHeadIn, depth));
  cal.head_in_rows = r.sample(Site::kHeadIn, depth);
  std::vector<StreamGrid> grids;
  for (int p = 0; p <= 2 * depth; ++p) {
    const Site s = p == 2 * depth ? Site::kFinalNormIn : (p % 2 == 0 ? Site::kBlockInput : Site::kBlockMid);
    StreamCalib sc;
    sc.range = to_range(r.at(s, p == 2 * depth ? depth : p / 2));
    sc.alpha.assign(static_cast<size_t>(cfg.embed_dim), 0);
    grids.push_back(stream_grid(sc.range, recipe.residual_bits, recipe.pts));
    cal.streams.push_back(std::move(sc));
  }
  if (recipe.pts) {
    auto pts = forward_all<PtsObserver>(model, images, [&] { return PtsObserver(grids, cfg.embed_dim); },
                                        "calibrating PTS shifts", progress);
    for (size_t t = 1; t < pts.size(); ++t) pts[0].merge(pts[t]);
    for (int p = 0; p <= 2 * depth; ++p) cal.streams[static_cast<size_t>(p)].alpha = pts[0].best(p);
  }
  return cal;
}

}  // namespace vitint::convert
