#include "converter/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "vitint/error.h"

namespace vitint::convert {
namespace {

using calib::Grid;
constexpr double kNoError = 1e9;  // "infinite" SQNR, JSON-safe

// How one observed tensor is quantized.
struct SitePlan {
  bool used = false;
  bool probs = false;        // attention probabilities (observed as logits)
  size_t report = 0;         // index into Report::sites
  size_t sums = 0;           // offset of the kSums sums
  std::vector<Grid> grid;    // per channel as built (size 1: per tensor)
  Grid tensor;               // plain per-tensor quantizer
  bool grid_is_tensor = false;  // built per tensor: the per-tensor error is the built one
};

// Sums per site: signal, noise as built, noise per tensor, clipped count,
// values observed.
constexpr size_t kSums = 5;

class ReportObserver final : public PassObserver {
 public:
  ReportObserver(const std::vector<SitePlan>& plan, int depth, int attention_bits, bool lis_normalize, size_t nsums)
      : plan_(plan), depth_(depth), attention_bits_(attention_bits), lis_normalize_(lis_normalize),
        abs_max_(plan.size()), min_(plan.size(), std::numeric_limits<double>::infinity()),
        max_(plan.size(), -std::numeric_limits<double>::infinity()) {
    sums.assign(nsums, 0.0);
  }

  void observe(Site site, int block, const float* data, int rows, int cols) override {
    const size_t idx = static_cast<size_t>(static_cast<int>(site) * (depth_ + 1) + block);
    const SitePlan& p = plan_[idx];
    if (!p.used) return;
    double* s = sums.data() + p.sums;
    s[4] += double(rows) * cols;
    if (p.probs) {
      probabilities(idx, data, rows, cols, s);
      return;
    }
    auto& am = abs_max_[idx];
    if (am.empty()) am.assign(static_cast<size_t>(cols), 0.f);
    const bool per_channel = p.grid.size() > 1;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const double x = data[static_cast<size_t>(r) * cols + c];
        const Grid& g = p.grid[per_channel ? static_cast<size_t>(c) : 0];
        const double e = x - g.fake(x);
        s[0] += x * x;
        s[1] += e * e;
        if (!p.grid_is_tensor) {
          const double et = x - p.tensor.fake(x);
          s[2] += et * et;
        }
        const double q = std::round(x / g.scale) + g.zero_point;
        if (q < g.qmin || q > g.qmax) s[3] += 1;
        am[static_cast<size_t>(c)] = std::max(am[static_cast<size_t>(c)], static_cast<float>(std::fabs(x)));
        min_[idx] = std::min(min_[idx], x);
        max_[idx] = std::max(max_[idx], x);
      }
  }

  void merge(const ReportObserver& o) {
    for (size_t i = 0; i < plan_.size(); ++i) {
      min_[i] = std::min(min_[i], o.min_[i]);
      max_[i] = std::max(max_[i], o.max_[i]);
      if (abs_max_[i].empty()) abs_max_[i] = o.abs_max_[i];
      else
        for (size_t c = 0; c < o.abs_max_[i].size(); ++c) abs_max_[i][c] = std::max(abs_max_[i][c], o.abs_max_[i][c]);
    }
  }

  const std::vector<float>& abs_max(size_t idx) const { return abs_max_[idx]; }
  double min(size_t idx) const { return min_[idx]; }
  double max(size_t idx) const { return max_[idx]; }

 private:
  // Softmax of each logits row, then the engine's probability quantizer:
  // uint8 with scale 1/255, or Log-Int-Softmax codes 2^-code (code >= 15:
  // zero), optionally renormalized to a unit row sum.
  void probabilities(size_t idx, const float* data, int rows, int cols, double* s) {
    std::vector<double> p(static_cast<size_t>(cols)), q(static_cast<size_t>(cols));
    double pmax = 0;
    for (int r = 0; r < rows; ++r) {
      const float* x = data + static_cast<size_t>(r) * cols;
      const double mx = *std::max_element(x, x + cols);
      double sum = 0;
      for (int c = 0; c < cols; ++c) sum += p[static_cast<size_t>(c)] = std::exp(double(x[c]) - mx);
      double qsum = 0;
      for (int c = 0; c < cols; ++c) {
        double& pc = p[static_cast<size_t>(c)];
        pc /= sum;
        pmax = std::max(pmax, pc);
        double& qc = q[static_cast<size_t>(c)];
        if (attention_bits_ == 8) {
          qc = std::min(std::round(pc * 255.0), 255.0) / 255.0;
        } else {
          const double ratio = 1.0 / pc;
          const int f = static_cast<int>(std::floor(std::log2(ratio)));
          const int code = f + (ratio >= 1.5 * std::ldexp(1.0, f) ? 1 : 0);
          qc = code >= 15 ? 0.0 : std::ldexp(1.0, -code);
        }
        qsum += qc;
      }
      for (int c = 0; c < cols; ++c) {
        const double pc = p[static_cast<size_t>(c)];
        double qc = q[static_cast<size_t>(c)];
        if (attention_bits_ == 4 && lis_normalize_ && qsum > 0) qc /= qsum;
        s[0] += pc * pc;
        s[1] += (pc - qc) * (pc - qc);
        s[2] += (pc - qc) * (pc - qc);
        if (pc > 0 && qc == 0) s[3] += 1;
      }
    }
    min_[idx] = 0;
    max_[idx] = std::max(max_[idx], pmax);
  }

  const std::vector<SitePlan>& plan_;
  int depth_;
  int attention_bits_;
  bool lis_normalize_;
  std::vector<std::vector<float>> abs_max_;
  std::vector<double> min_, max_;
};

Grid act_grid(const Range& r) { return calib::grid_for(r, 8); }

// The 5 sites with the lowest SQNR among the attention probabilities or
// among the other activations (their SQNRs do not compare: the
// probabilities' error reaches the output diluted by attn @ V).
std::vector<const SiteReport*> worst(const Report& rep, bool attention) {
  std::vector<const SiteReport*> w;
  for (const SiteReport& s : rep.sites)
    if ((s.kind == "attn") == attention) w.push_back(&s);
  std::stable_sort(w.begin(), w.end(), [](const SiteReport* a, const SiteReport* b) { return a->sqnr_db < b->sqnr_db; });
  w.resize(std::min<size_t>(w.size(), 5));
  return w;
}

struct KindSummary {
  std::string kind;
  int sites = 0, with_outliers = 0;
  double min_sqnr = 0, mean_sqnr = 0, min_tensor_sqnr = 0;
  std::string min_site;
};

// Per kind of site, in order of first appearance.
std::vector<KindSummary> by_kind(const Report& rep) {
  std::vector<KindSummary> out;
  for (const SiteReport& s : rep.sites) {
    auto it = std::find_if(out.begin(), out.end(), [&](const KindSummary& k) { return k.kind == s.kind; });
    if (it == out.end()) {
      out.push_back({s.kind, 0, 0, s.sqnr_db, 0, s.sqnr_tensor_db, s.name});
      it = out.end() - 1;
    }
    ++it->sites;
    it->with_outliers += s.outlier_channels > 0;
    it->mean_sqnr += s.sqnr_db;
    if (s.sqnr_db < it->min_sqnr) {
      it->min_sqnr = s.sqnr_db;
      it->min_site = s.name;
    }
    it->min_tensor_sqnr = std::min(it->min_tensor_sqnr, s.sqnr_tensor_db);
  }
  for (KindSummary& k : out) k.mean_sqnr /= k.sites;
  return out;
}

double sqnr(double signal, double noise) {
  if (noise <= 0) return kNoError;
  if (signal <= 0) return -kNoError;
  return 10.0 * std::log10(signal / noise);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

Report build_report(const ReferenceModel& model, const std::vector<std::vector<uint8_t>>& images,
                    const Calibration& cal, const Recipe& recipe, const nlohmann::json& model_metadata,
                    bool progress) {
  if (images.empty()) throw Error("the report needs at least one calibration image");
  const VitConfig& cfg = model.config();
  const int depth = cfg.depth;
  const StreamPoints points(cfg);
  VITINT_ASSERT(static_cast<int>(cal.ln1.size()) == depth && cal.streams.size() == static_cast<size_t>(points.count()));
  std::map<std::string, double> folding;
  if (model_metadata.contains("calibration") && model_metadata["calibration"].contains("channel_folding"))
    for (const auto& [k, v] : model_metadata["calibration"]["channel_folding"].items()) folding[k] = v.get<double>();

  Report rep;
  rep.architecture = cfg.architecture;
  rep.recipe = recipe;
  rep.images = static_cast<int>(images.size());
  std::vector<SitePlan> plan(static_cast<size_t>(kSiteCount) * (depth + 1));
  size_t nsums = 0;
  auto add = [&](Site s, int block, const std::string& name, const std::string& kind) -> SitePlan& {
    SitePlan& p = plan[static_cast<size_t>(static_cast<int>(s) * (depth + 1) + block)];
    p.used = true;
    p.report = rep.sites.size();
    p.sums = nsums;
    nsums += kSums;
    SiteReport r;
    r.name = name;
    r.kind = kind;
    r.block = block < depth ? block : -1;
    rep.sites.push_back(r);
    return p;
  };
  // A uint8 activation quantizer: per tensor, or folded per channel as quantize.cpp builds it.
  auto activation = [&](SitePlan& p, const Range& tensor, const std::vector<Range>* channels, const std::string& key) {
    SiteReport& r = rep.sites[p.report];
    p.tensor = act_grid(tensor);
    r.range_min = tensor.min;
    r.range_max = tensor.max;
    r.scale = p.tensor.scale;
    r.zero_point = p.tensor.zero_point;
    r.bits = 8;
    const auto f = folding.find(key);
    if (channels && f != folding.end()) {
      const double a = f->second, st = p.tensor.scale;
      for (const Range& c : *channels) {
        const ActQuant q = folded_channel_quant(c, st, a);
        p.grid.push_back({q.scale, q.zero_point, 0, 255});
      }
      r.folding = a;
      // a = 0: the tensor's scale, each channel's own zero point.
      r.quantizer = a == 0 ? "uint8 per tensor (channel zero points)"
                           : "uint8 per channel (folded, a=" + fmt("%.2f", a) + ")";
    } else {
      p.grid = {p.tensor};
      p.grid_is_tensor = true;
      r.quantizer = "uint8 per tensor";
    }
  };
  // A stream site of `block`, with its stream point's calibration.
  auto stream = [&](Site site, int block, const std::string& name) {
    SitePlan& p = add(site, block, name, "stream");
    const StreamCalib& sc = cal.streams[static_cast<size_t>(points.point(site, block))];
    const StreamGrid g = stream_grid(sc.range, recipe.residual_bits, recipe.pts);
    SiteReport& r = rep.sites[p.report];
    p.tensor = calib::grid_for(sc.range, recipe.residual_bits);
    for (uint8_t a : sc.alpha) p.grid.push_back({g.base_scale * (1 << a), g.zero_point, g.qmin, g.qmax});
    r.bits = recipe.residual_bits;
    r.range_min = sc.range.min;
    r.range_max = sc.range.max;
    r.scale = p.tensor.scale;
    r.zero_point = p.tensor.zero_point;
    r.quantizer = std::string(recipe.residual_bits == 16 ? "int16" : "uint8") + (recipe.pts ? " PTS" : " per tensor");
  };
  if (cfg.pre_norm) stream(Site::kEmbedOut, depth, "embed");
  for (int b = 0; b < depth; ++b) {
    const auto i = static_cast<size_t>(b);
    const std::string pre = "blocks." + std::to_string(b) + ".";
    stream(Site::kBlockInput, b, pre + "in");
    activation(add(Site::kLn1Out, b, pre + "ln1", "ln1"), cal.ln1[i], &cal.ln1_channels[i], pre + "ln1");
    activation(add(Site::kQ, b, pre + "q", "q"), cal.q[i], nullptr, "");
    activation(add(Site::kK, b, pre + "k", "k"), cal.k[i], nullptr, "");
    activation(add(Site::kV, b, pre + "v", "v"), cal.v[i], nullptr, "");
    {
      SitePlan& p = add(Site::kAttnLogits, b, pre + "attn", "attn");
      p.probs = true;
      SiteReport& r = rep.sites[p.report];
      r.bits = recipe.attention_bits;
      r.range_min = 0;
      r.range_max = 1;
      if (recipe.attention_bits == 8) {
        r.scale = 1.0 / 255;
        r.quantizer = "uint8 probabilities (1/255)";
      } else {
        r.quantizer = std::string("4-bit Log-Int-Softmax") + (recipe.lis_normalize ? " (row-normalized)" : "");
      }
    }
    activation(add(Site::kAttnOut, b, pre + "attn_out", "attn_out"), cal.attn_out[i],
               &cal.attn_out_channels[i], pre + "attn.out");
    stream(Site::kBlockMid, b, pre + "mid");
    activation(add(Site::kLn2Out, b, pre + "ln2", "ln2"), cal.ln2[i], &cal.ln2_channels[i], pre + "ln2");
    activation(add(Site::kGeluOut, b, pre + "gelu", "gelu"), cal.gelu[i], &cal.gelu_channels[i], pre + "gelu");
  }
  stream(Site::kFinalNormIn, depth, "final.in");
  if (cfg.norm_before_pool()) stream(Site::kNormOut, depth, "final.out");
  activation(add(Site::kHeadIn, depth, "head.in", "head_in"), cal.head_in, &cal.head_in_channels, "norm");

  std::vector<double> sums;
  std::vector<ReportObserver> obs = run_pass<ReportObserver>(
      model, images, [&] { return ReportObserver(plan, depth, recipe.attention_bits, recipe.lis_normalize, nsums); },
      &sums, "measuring quantization error", progress);
  for (size_t t = 1; t < obs.size(); ++t) obs[0].merge(obs[t]);

  for (size_t idx = 0; idx < plan.size(); ++idx) {
    const SitePlan& p = plan[idx];
    if (!p.used) continue;
    SiteReport& r = rep.sites[p.report];
    const double* s = &sums[p.sums];
    r.sqnr_db = sqnr(s[0], s[1]);
    r.sqnr_tensor_db = p.grid_is_tensor ? r.sqnr_db : sqnr(s[0], s[2]);
    r.observed_min = obs[0].min(idx);
    r.observed_max = obs[0].max(idx);
    const std::vector<float>& am = obs[0].abs_max(idx);
    r.clipped_percent = 100.0 * s[3] / s[4];
    if (p.probs) continue;
    r.channels = static_cast<int>(am.size());
    std::vector<float> sorted = am;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted.empty() ? 0 : sorted[sorted.size() / 2];
    std::vector<std::pair<int, double>> order;
    for (size_t c = 0; c < am.size(); ++c) {
      order.emplace_back(static_cast<int>(c), am[c]);
      if (median > 0 && am[c] > kOutlierFactor * median) ++r.outlier_channels;
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    order.resize(std::min<size_t>(order.size(), 3));
    r.top_channels = order;
    r.max_median_ratio = median > 0 && !sorted.empty() ? sorted.back() / median : 0;
  }
  return rep;
}

nlohmann::json report_json(const Report& rep) {
  using json = nlohmann::json;
  json sites = json::array();
  for (const SiteReport& s : rep.sites) {
    json top = json::array();
    for (const auto& [c, v] : s.top_channels) top.push_back({{"channel", c}, {"max_abs", v}});
    json j = {{"name", s.name},
              {"kind", s.kind},
              {"block", s.block},
              {"quantizer", s.quantizer},
              {"bits", s.bits},
              {"range", {s.range_min, s.range_max}},
              {"scale", s.scale},
              {"zero_point", s.zero_point},
              {"observed", {s.observed_min, s.observed_max}},
              {"channels", s.channels},
              {"outlier_channels", s.outlier_channels},
              {"max_median_ratio", s.max_median_ratio},
              {"top_channels", top},
              {"sqnr_db", s.sqnr_db},
              {"sqnr_per_tensor_db", s.sqnr_tensor_db},
              {"clipped_percent", s.clipped_percent}};
    if (s.folding >= 0) j["folding"] = s.folding;
    sites.push_back(j);
  }
  auto lowest = [&](bool attention) {
    json w = json::array();
    for (const SiteReport* s : worst(rep, attention)) w.push_back({{"name", s->name}, {"sqnr_db", s->sqnr_db}});
    return w;
  };
  json kinds = json::array();
  for (const KindSummary& k : by_kind(rep))
    kinds.push_back({{"kind", k.kind},
                     {"sites", k.sites},
                     {"min_sqnr_db", k.min_sqnr},
                     {"min_site", k.min_site},
                     {"mean_sqnr_db", k.mean_sqnr},
                     {"min_sqnr_per_tensor_db", k.min_tensor_sqnr},
                     {"sites_with_outlier_channels", k.with_outliers}});
  return {{"architecture", rep.architecture},
          {"recipe", recipe_json(rep.recipe)},
          {"calibration_images", rep.images},
          {"definitions",
           {{"sqnr_db", "10 log10(sum x^2 / sum (x - Q(x))^2) on the calibration images, quantizer as built"},
            {"sqnr_per_tensor_db", "the same for the plain per-tensor quantizer of the calibrated range"},
            {"outlier_channels", "channels whose max |x| exceeds 8 x the median channel max |x|"},
            {"clipped_percent", "values outside the representable range (attention: nonzero probabilities stored as 0)"}}},
          {"sites", sites},
          {"by_kind", kinds},
          {"worst_sites", lowest(false)},
          {"worst_attention", lowest(true)}};
}

std::string report_table(const Report& rep) {
  std::ostringstream o;
  const Recipe& r = rep.recipe;
  o << "Quantization report: " << rep.architecture << ", " << r.method << (r.pts ? " + PTS" : "") << ", "
    << (r.attention_bits == 8 ? "8-bit" : "4-bit LIS") << " attention, " << r.residual_bits << "-bit residual stream, "
    << rep.images << " calibration images\n";
  char line[320];
  std::snprintf(line, sizeof line, "%-18s %-36s %17s %17s %8s %7s %7s %6s %6s  %s\n", "site", "quantizer", "range",
                "observed", "outl.ch", "max/med", "clip%", "SQNR", "tensor", "top channel");
  o << line;
  auto db = [](double v) { return v >= kNoError ? std::string("inf") : fmt("%.1f", v); };
  for (const SiteReport& s : rep.sites) {
    const std::string range = "[" + fmt("%.3g", s.range_min) + ", " + fmt("%.3g", s.range_max) + "]";
    const std::string seen = "[" + fmt("%.3g", s.observed_min) + ", " + fmt("%.3g", s.observed_max) + "]";
    const std::string outl = s.channels ? std::to_string(s.outlier_channels) + "/" + std::to_string(s.channels) : "-";
    const std::string ratio = s.channels ? fmt("%.1f", s.max_median_ratio) : "-";
    const std::string top = s.outlier_channels && !s.top_channels.empty()
                                ? "#" + std::to_string(s.top_channels[0].first) + " |x|<=" + fmt("%.3g", s.top_channels[0].second)
                                : "";
    std::snprintf(line, sizeof line, "%-18s %-36s %17s %17s %8s %7s %7.3f %6s %6s  %s\n", s.name.c_str(), s.quantizer.c_str(),
                  range.c_str(), seen.c_str(), outl.c_str(), ratio.c_str(), s.clipped_percent, db(s.sqnr_db).c_str(),
                  db(s.sqnr_tensor_db).c_str(), top.c_str());
    o << line;
  }
  o << "SQNR in dB on the calibration images (tensor: the plain per-tensor quantizer of the same range); outl.ch:\n"
       "channels with max|x| > 8x the median channel max|x|; clip%: values outside the grid (attn: probabilities\n"
       "stored as 0).\n\nBy kind:\n";
  std::snprintf(line, sizeof line, "  %-9s %5s %9s %-18s %9s %11s %9s\n", "kind", "sites", "min SQNR", "(site)", "mean",
                "min tensor", "outliers");
  o << line;
  for (const KindSummary& k : by_kind(rep)) {
    std::snprintf(line, sizeof line, "  %-9s %5d %9s %-18s %9s %11s %9d\n", k.kind.c_str(), k.sites, db(k.min_sqnr).c_str(),
                  k.min_site.c_str(), db(k.mean_sqnr).c_str(), db(k.min_tensor_sqnr).c_str(), k.with_outliers);
    o << line;
  }
  for (bool attention : {false, true}) {
    o << (attention ? "Lowest SQNR, attention probabilities:" : "Lowest SQNR, activations:");
    const auto w = worst(rep, attention);
    for (size_t i = 0; i < w.size(); ++i) o << (i ? ", " : " ") << w[i]->name << " " << db(w[i]->sqnr_db) << " dB";
    o << "\n";
  }
  return o.str();
}

}  // namespace vitint::convert
