// The calibrators (FQ-ViT's MinMax, EMA, Percentile, OMSE) on synthetic data
// with known answers, and the --report statistics on a random model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "converter/calibrate.h"
#include "converter/report.h"
#include "engine/src/format.h"
#include "models/vit_spec.h"
#include "tiny_model.h"

namespace vc = vitint::convert;
namespace calib = vitint::convert::calib;

namespace {

// torch.quantile (linear interpolation) by sorting everything.
double sorted_quantile(std::vector<float> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * double(v.size() - 1);
  const auto i = static_cast<size_t>(std::floor(pos));
  const double frac = pos - double(i);
  return i + 1 < v.size() ? v[i] + frac * (double(v[i + 1]) - v[i]) : v[i];
}

std::vector<float> normal_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

}  // namespace

TEST_CASE("EMA: max <- max + 0.01 (cur - max) after the first batch") {
  const auto m = calib::ema({{-1, 1}, {-3, 5}, {0, 2}});
  // min: -1 -> -1 + 0.01 * (-3 + 1) = -1.02 -> -1.02 + 0.01 * (0 + 1.02) = -1.0098
  // max:  1 ->  1 + 0.01 * (5 - 1) = 1.04 -> 1.04 + 0.01 * (2 - 1.04) = 1.0496
  CHECK(m.first == doctest::Approx(-1.0098).epsilon(1e-12));
  CHECK(m.second == doctest::Approx(1.0496).epsilon(1e-12));
  CHECK(calib::ema({{-2, 3}}) == std::pair<double, double>(-2, 3));
  CHECK_THROWS(calib::ema({}));
}

TEST_CASE("EMA mini-batches: consecutive images, 10 batches") {
  CHECK(calib::ema_batch(0, 100) == 0);
  CHECK(calib::ema_batch(9, 100) == 0);
  CHECK(calib::ema_batch(10, 100) == 1);
  CHECK(calib::ema_batch(99, 100) == 9);
  CHECK(calib::ema_batch(104, 105) == 9);
  // Fewer images than batches: one image per batch, in order.
  std::vector<int> b;
  for (int i = 0; i < 4; ++i) b.push_back(calib::ema_batch(i, 4));
  CHECK(std::is_sorted(b.begin(), b.end()));
  CHECK(std::adjacent_find(b.begin(), b.end()) == b.end());
}

TEST_CASE("Percentile: exact 1e-5 quantiles of a known distribution from the tails") {
  // 0, 1, .., n-1 in a scrambled order: quantile(p) = p * (n - 1).
  const int64_t n = 1000003;
  calib::Tails t(calib::percentile_tail(n));
  for (int64_t i = 0; i < n; ++i) t.add(static_cast<float>((i * 7919) % n));
  CHECK(calib::quantile(t, n, 1 - calib::kPercentile) == doctest::Approx((1 - 1e-5) * (n - 1)).epsilon(1e-12));
  CHECK(calib::quantile(t, n, calib::kPercentile) == doctest::Approx(1e-5 * (n - 1)).epsilon(1e-9));
  CHECK(calib::quantile(t, n, 1.0) == doctest::Approx(double(n - 1)));
  CHECK(calib::quantile(t, n, 0.0) == 0.0);
  // Order statistics beyond the tails are refused, not guessed.
  CHECK_THROWS(calib::quantile(t, n, 0.5));
}

TEST_CASE("Percentile: tails merged in any order give torch.quantile's answer") {
  const std::vector<float> v = normal_values(300000, 3);
  const int64_t n = static_cast<int64_t>(v.size());
  const size_t k = calib::percentile_tail(n);
  calib::Tails a(k), b(k), c(k);
  for (size_t i = 0; i < v.size(); ++i) (i % 3 == 0 ? a : (i % 3 == 1 ? b : c)).add(v[i]);
  calib::Tails abc = a, cba = c;
  abc.merge(b);
  abc.merge(c);
  cba.merge(b);
  cba.merge(a);
  CHECK(abc.top() == cba.top());
  CHECK(abc.bottom() == cba.bottom());
  for (double p : {calib::kPercentile, 1 - calib::kPercentile}) {
    CAPTURE(p);
    CHECK(calib::quantile(abc, n, p) == doctest::Approx(sorted_quantile(v, p)).epsilon(1e-6));
  }
  // Small sets: the tails hold everything.
  calib::Tails s(8);
  for (float x : {5.f, 1.f, 3.f}) s.add(x);
  CHECK(calib::quantile(s, 3, 0.5) == 3.0);
  CHECK(calib::quantile(s, 3, 0.75) == 4.0);
}

TEST_CASE("Grids: uint8 activations and 16-bit streams") {
  const calib::Grid g8 = calib::grid_for({-1.0, 3.0}, 8);
  CHECK(g8.scale == doctest::Approx(4.0 / 255));
  CHECK(g8.zero_point == 64);
  CHECK(g8.qmin == 0);
  CHECK(g8.qmax == 255);
  CHECK(g8.fake(10.0) == doctest::Approx((255 - 64) * 4.0 / 255));  // clipped
  CHECK(g8.fake(0.0) == 0.0);                                         // zero exact
  const calib::Grid g16 = calib::grid_for({-1.0, 3.0}, 16);
  CHECK(g16.scale == doctest::Approx(4.0 / 65535));
  CHECK(g16.qmin == -32768);
  CHECK(g16.qmax == 32767);
  CHECK(std::fabs(g16.fake(1.2345) - 1.2345) <= g16.scale / 2 + 1e-12);
}

TEST_CASE("Histogram: the integrated squared error matches the values' own error") {
  const std::vector<float> v = normal_values(200000, 5);
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  calib::Histogram h(*lo, *hi, 1 << 14);
  h.add(v.data(), v.size());
  CHECK(h.total() == static_cast<int64_t>(v.size()));
  for (double f : {1.0, 0.7, 0.4, 0.15}) {
    const calib::Grid g = calib::grid_for({*lo * f, *hi * f}, 8);
    double direct = 0;
    for (float x : v) direct += (x - g.fake(x)) * (x - g.fake(x));
    CAPTURE(f);
    CHECK(h.sq_error(g) == doctest::Approx(direct).epsilon(0.01));
  }
  // A constant tensor: no width, exact point error.
  calib::Histogram c(0.5, 0.5, 16);
  for (int i = 0; i < 10; ++i) c.add(0.5f);
  const calib::Grid g = calib::grid_for({0.0, 1.0}, 8);
  CHECK(c.sq_error(g) == doctest::Approx(10 * std::pow(0.5 - g.fake(0.5), 2)));
}

TEST_CASE("OMSE: clips outliers, keeps the range of outlier-free data") {
  std::vector<float> v = normal_values(200000, 7);
  for (int i = 0; i < 5; ++i) v.push_back(60.f);
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  const vc::Range minmax{*lo, *hi};
  calib::Histogram h(*lo, *hi, 1 << 14);
  h.add(v.data(), v.size());
  const vc::Range r = calib::omse(minmax, h, 8);
  // A candidate of the grid (min, max) * (1 - 0.01 i), well below the outliers.
  const double f = r.max / minmax.max;
  CHECK(r.min == doctest::Approx(minmax.min * f));
  CHECK(std::fabs(f * 100 - std::round(f * 100)) < 1e-9);
  // A few far outliers: their squared clipping error soon outweighs the
  // finer grid of 200000 values, so MSE clips only a little.
  CHECK(f < 1.0);
  CHECK(f > 0.8);
  // The chosen candidate beats min/max and its neighbours.
  auto err = [&](double g) { return h.sq_error(calib::grid_for({minmax.min * g, minmax.max * g}, 8)); };
  CHECK(err(f) < err(1.0));
  CHECK(err(f) <= err(f + 0.01));
  if (f > 0.11) CHECK(err(f) <= err(f - 0.01));
  // The same search on weighted values agrees with the histogram.
  std::vector<std::pair<float, double>> weighted;
  for (float x : v) weighted.emplace_back(x, 1.0);
  CHECK(calib::omse(minmax, weighted, 8).max == doctest::Approx(r.max).epsilon(0.03));

  // Laplace(b = 1) at 8 bits: the MSE-optimal symmetric clip is ~9.9 b
  // (Banner et al., ACIQ), well inside the sample's min/max (~ +-12).
  std::mt19937 lr(13);
  std::exponential_distribution<float> ex(1.f);
  std::vector<float> lap;
  for (int i = 0; i < 400000; ++i) lap.push_back(i % 2 ? ex(lr) : -ex(lr));
  const auto [llo, lhi] = std::minmax_element(lap.begin(), lap.end());
  calib::Histogram hl(*llo, *lhi, 1 << 14);
  hl.add(lap.data(), lap.size());
  const vc::Range rl = calib::omse({*llo, *lhi}, hl, 8);
  CAPTURE(*lhi);
  CHECK(rl.max < *lhi * 0.95);
  CHECK(rl.max == doctest::Approx(9.9).epsilon(0.15));

  // Uniform data: clipping never pays more than a step or two.
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  calib::Histogram hu(-1, 1, 1 << 14);
  for (int i = 0; i < 100000; ++i) hu.add(u(rng));
  CHECK(calib::omse({-1, 1}, hu, 8).max >= 0.97);
}

TEST_CASE("calibrate: every method on a random model, deterministic, ranges inside min/max") {
  const vc::Checkpoint ckpt = vc::Checkpoint::random("deit_tiny_patch16_224", 11);
  const vc::ReferenceModel ref(ckpt);
  const auto images = vitint::test::synthetic_images(3, ckpt.config().image_size, 11);
  vc::Recipe recipe;
  recipe.pts = false;  // streams follow the method too
  recipe.method = "minmax";
  const vc::Calibration mm = vc::calibrate(ref, images, recipe, false);
  const vc::Calibration mm2 = vc::calibrate(ref, images, recipe, false);
  CHECK(mm.gelu[3].max == mm2.gelu[3].max);
  CHECK(mm.ln1_channels[2][5].mean == mm2.ln1_channels[2][5].mean);
  for (const char* method : {"ema", "percentile", "omse"}) {
    CAPTURE(method);
    recipe.method = method;
    const vc::Calibration c = vc::calibrate(ref, images, recipe, false);
    const vc::Calibration again = vc::calibrate(ref, images, recipe, false);
    for (size_t b = 0; b < mm.ln1.size(); ++b) {
      for (auto f : {&vc::Calibration::ln1, &vc::Calibration::q, &vc::Calibration::k, &vc::Calibration::v,
                     &vc::Calibration::attn_out, &vc::Calibration::ln2, &vc::Calibration::gelu}) {
        const vc::Range& r = (c.*f)[b];
        const vc::Range& m = (mm.*f)[b];
        CHECK(r.min >= m.min - 1e-6);
        CHECK(r.max <= m.max + 1e-6);
        CHECK(r.min < r.max);
        CHECK(r.mean == m.mean);  // the mean is the data's
        CHECK(r.max == (again.*f)[b].max);
      }
      for (size_t ch = 0; ch < mm.gelu_channels[b].size(); ++ch) {
        CHECK(c.gelu_channels[b][ch].max <= mm.gelu_channels[b][ch].max + 1e-6);
        CHECK(c.gelu_channels[b][ch].max == again.gelu_channels[b][ch].max);
      }
    }
    CHECK(c.streams[4].range.max <= mm.streams[4].range.max + 1e-6);
  }
  // With one image EMA has one batch: MinMax exactly.
  const std::vector<std::vector<uint8_t>> one(images.begin(), images.begin() + 1);
  recipe.method = "minmax";
  const vc::Calibration m1 = vc::calibrate(ref, one, recipe, false);
  recipe.method = "ema";
  const vc::Calibration e1 = vc::calibrate(ref, one, recipe, false);
  CHECK(e1.gelu[5].max == m1.gelu[5].max);
  CHECK(e1.ln2_channels[1][7].min == m1.ln2_channels[1][7].min);
  // With PTS the stream ranges stay min/max whatever the method (FQ-ViT's PTF observer).
  recipe.pts = true;
  recipe.method = "percentile";
  const vc::Calibration p = vc::calibrate(ref, images, recipe, false);
  CHECK(p.streams[3].range.max == mm.streams[3].range.max);
  recipe.method = "kl";
  CHECK_THROWS_WITH_AS(vc::calibrate(ref, images, recipe, false),
                       doctest::Contains("minmax, ema, percentile, omse"), vitint::Error);
}

TEST_CASE("calibrate: one residual-stream grid for every point by default (identity skips), one per point without") {
  for (bool shared : {true, false}) {
    CAPTURE(shared);
    const auto file = vitint::format::Reader::from_bytes(
        vitint::test::random_model_bytes("deit_tiny_patch16_224", 9, 2, 8, shared), "grids");
    const nlohmann::json& meta = file->metadata();
    CHECK(meta["calibration"]["shared_stream"] == shared);
    const nlohmann::json& streams = meta["quant"]["streams"];
    REQUIRE(streams.size() == 25u);  // 2 per block, the final norm's input
    auto alpha = [&](size_t p) {
      const auto& t = file->tensor("streams." + std::to_string(p) + ".alpha");
      const auto* a = static_cast<const uint8_t*>(t.data);
      return std::vector<uint8_t>(a, a + t.nbytes);
    };
    bool same_grid = true, identity_skips = true;
    for (size_t p = 1; p < streams.size(); ++p)
      same_grid = same_grid && streams[p]["zero_point"] == streams[0]["zero_point"] && alpha(p) == alpha(0);
    for (int b = 0; b < 12; ++b)
      for (const char* lin : {"proj", "fc2"}) {
        const std::string name = vitint::models::vit::block(b, lin);
        const auto* m = static_cast<const int32_t*>(file->tensor(name + ".skip_mult").data);
        const auto* s = static_cast<const int32_t*>(file->tensor(name + ".skip_shift").data);
        for (int c = 0; c < 192; ++c) identity_skips = identity_skips && m[c] == (1 << 30) && s[c] == 30;
      }
    CHECK(same_grid == shared);
    CHECK(identity_skips == shared);
  }
}

TEST_CASE("Report: JSON structure and table on a random model") {
  const vc::Checkpoint ckpt = vc::Checkpoint::random("deit_tiny_patch16_224", 5);
  const vc::ReferenceModel ref(ckpt);
  const auto images = vitint::test::synthetic_images(2, ckpt.config().image_size, 5);
  vc::ConvertInfo info;
  info.recipe.attention_bits = 4;
  info.calib_count = 2;
  info.calib_list = "synthetic";
  const vc::Calibration cal = vc::calibrate(ref, images, info.recipe, false);
  vitint::format::Writer w;
  vc::quantize_vit(ckpt, cal, info, &w);
  const auto model = vitint::format::Reader::from_bytes(w.to_bytes(), "tiny");
  const vc::Report rep = vc::build_report(ref, images, cal, info.recipe, model->metadata(), false);
  const nlohmann::json j = vc::report_json(rep);
  const int depth = ckpt.config().depth;

  CHECK(j["architecture"] == ckpt.config().architecture);
  CHECK(j["recipe"]["method"] == "minmax");
  CHECK(j["recipe"]["attention_bits"] == 4);
  CHECK(j["calibration_images"] == 2);
  REQUIRE(j["sites"].is_array());
  CHECK(j["sites"].size() == static_cast<size_t>(10 * depth + 2));  // 10 per block, final stream, head input
  int streams = 0;
  for (const auto& s : j["sites"]) {
    CAPTURE(s.dump());
    for (const char* key : {"name", "kind", "block", "quantizer", "bits", "range", "scale", "zero_point", "observed",
                            "channels", "outlier_channels", "max_median_ratio", "top_channels", "sqnr_db",
                            "sqnr_per_tensor_db", "clipped_percent"})
      CHECK(s.contains(key));
    CHECK(s["range"].size() == 2);
    CHECK(s["sqnr_db"].is_number());
    CHECK(s["clipped_percent"].get<double>() >= 0);
    const std::string kind = s["kind"];
    if (kind == "stream") {
      ++streams;
      CHECK(s["bits"] == 16);
      CHECK(s["channels"] == ckpt.config().embed_dim);
      // PTS per-channel scales never do worse than the plain tensor grid by much.
      CHECK(s["sqnr_db"].get<double>() > s["sqnr_per_tensor_db"].get<double>() - 1.0);
    }
    if (kind == "attn") CHECK(s["quantizer"].get<std::string>().find("Log-Int-Softmax") != std::string::npos);
    if (kind == "gelu") {
      CHECK(s["channels"] == ckpt.config().mlp_hidden);
      CHECK(s.contains("folding"));
    }
    if (kind == "q") {
      // Min/max calibration clips nothing and a uint8 grid of a real tensor is in the 20-60 dB range.
      CHECK(s["clipped_percent"] == 0.0);
      CHECK(s["sqnr_db"].get<double>() > 20);
      CHECK(s["sqnr_db"].get<double>() < 60);
      CHECK(s["sqnr_db"] == s["sqnr_per_tensor_db"]);
    }
  }
  CHECK(streams == 2 * depth + 1);
  CHECK(j["sites"][0]["name"] == "blocks.0.in");
  CHECK(j["sites"].back()["name"] == "head.in");
  CHECK(j["worst_sites"].size() == 5);
  CHECK(j["worst_attention"].size() == 5);
  for (const auto& site : j["worst_sites"]) CHECK(site["name"].get<std::string>().find(".attn") == std::string::npos);
  REQUIRE(j["by_kind"].size() == 10);  // stream, ln1, q, k, v, attn, attn_out, ln2, gelu, head_in
  CHECK(j["by_kind"][0]["kind"] == "stream");
  CHECK(j["by_kind"][0]["sites"] == 2 * depth + 1);
  CHECK(j["by_kind"][9]["kind"] == "head_in");
  CHECK(j["by_kind"][9]["sites"] == 1);
  const std::string table = vc::report_table(rep);
  CHECK(table.find("blocks.0.ln1") != std::string::npos);
  CHECK(table.find("Lowest SQNR") != std::string::npos);
}

TEST_CASE("forward_images: floating-point totals do not depend on the number of workers") {
  const vc::Checkpoint ckpt = vc::Checkpoint::random("deit_tiny_patch16_224", 3);
  const vc::ReferenceModel ref(ckpt);
  const auto images = vitint::test::synthetic_images(4, ckpt.config().image_size, 3);
  // Sums of x and x^2 over every observed value, per site.
  struct Summer final : vc::PassObserver {
    Summer() { sums.assign(2 * (static_cast<size_t>(vc::Site::kHeadIn) + 1), 0.0); }
    void observe(vc::Site site, int, const float* data, int rows, int cols) override {
      const auto s = 2 * static_cast<size_t>(site);
      for (size_t i = 0; i < static_cast<size_t>(rows) * static_cast<size_t>(cols); ++i) {
        sums[s] += data[i];
        sums[s + 1] += double(data[i]) * data[i];
      }
    }
  };
  std::vector<double> one, three;
  {
    Summer a;
    vc::forward_images(ref, images, {&a}, &one, "", false);
  }
  {
    Summer a, b, c;
    vc::forward_images(ref, images, {&a, &b, &c}, &three, "", false);
  }
  REQUIRE(one.size() == three.size());
  for (size_t i = 0; i < one.size(); ++i) CHECK(one[i] == three[i]);  // bit for bit
  CHECK(one[2 * static_cast<size_t>(vc::Site::kGeluOut) + 1] > 0);
}
