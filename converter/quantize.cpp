#include "converter/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>

#include <Eigen/Dense>
#include <nlohmann/json.hpp>

#include "converter/cli.h"
#include "models/vit_spec.h"
#include "vitint/error.h"
#include "vitint/kernels/quant.h"

namespace vitint::convert {
namespace {

using json = nlohmann::json;
using format::DType;
namespace vit = models::vit;

template <class T>
void add(format::Writer* w, const std::string& name, std::vector<int64_t> shape, const std::vector<T>& v) {
  w->add_tensor(name, format::DTypeOf<T>::value, std::move(shape), v.data(), v.size() * sizeof(T));
}

int32_t to_i32(double v, const std::string& what) {
  const double r = std::round(v);
  if (!(r >= -2147483648.0 && r <= 2147483647.0))
    throw Error("quantization: " + what + " = " + std::to_string(v) + " does not fit in int32 (degenerate scales?)");
  return static_cast<int32_t>(r);
}

// The uint8 quantizer of a linear layer's input, per input channel (all
// equal for a per-tensor quantizer).
struct InQuant {
  std::vector<double> scale;
  std::vector<int32_t> zero_point;
  static InQuant tensor(const ActQuant& q, int k) {
    return {std::vector<double>(static_cast<size_t>(k), q.scale), std::vector<int32_t>(static_cast<size_t>(k), q.zero_point)};
  }
  static InQuant channels(const std::vector<ActQuant>& qs) {
    InQuant r;
    for (const ActQuant& q : qs) {
      r.scale.push_back(q.scale);
      r.zero_point.push_back(q.zero_point);
    }
    return r;
  }
};

// int8 symmetric per-output-channel weights of W * diag(input scales):
// the accumulator sum_c Wq[j][c] * (x_c - zp_c) times scale[j] is output j.
struct QWeight {
  int n = 0, k = 0;
  std::vector<int8_t> q;
  std::vector<double> scale;    // accumulator scale per output channel
  std::vector<int64_t> zp_sum;  // sum_c Wq[j][c] * zp_c
};

QWeight quantize_weight(const float* w, int n, int k, const InQuant& in) {
  QWeight r;
  r.n = n;
  r.k = k;
  r.q.resize(static_cast<size_t>(n) * k);
  r.scale.resize(static_cast<size_t>(n));
  r.zp_sum.assign(static_cast<size_t>(n), 0);
  std::vector<double> row(static_cast<size_t>(k));
  for (int j = 0; j < n; ++j) {
    double mx = 0;
    for (int p = 0; p < k; ++p) {
      row[static_cast<size_t>(p)] = double(w[static_cast<size_t>(j) * k + p]) * in.scale[static_cast<size_t>(p)];
      mx = std::max(mx, std::fabs(row[static_cast<size_t>(p)]));
    }
    const double s = mx > 0 ? mx / 127.0 : 1.0;
    r.scale[static_cast<size_t>(j)] = s;
    for (int p = 0; p < k; ++p) {
      const auto v = static_cast<int8_t>(std::clamp(std::round(row[static_cast<size_t>(p)] / s), -127.0, 127.0));
      r.q[static_cast<size_t>(j) * k + p] = v;
      r.zp_sum[static_cast<size_t>(j)] += int64_t{v} * in.zero_point[static_cast<size_t>(p)];
    }
  }
  return r;
}

struct DyadicVec {
  std::vector<int32_t> mult, shift;
  void push(double ratio) {
    const kernels::Dyadic d = kernels::make_dyadic(ratio);
    mult.push_back(d.mult);
    shift.push_back(d.shift);
  }
};

// Per-channel real scale of a residual-stream point.
struct Stream {
  StreamGrid grid;
  std::vector<uint8_t> alpha;
  double scale(int c) const { return grid.base_scale * (1 << alpha[static_cast<size_t>(c)]); }
};

class VitQuantizer {
 public:
  VitQuantizer(const Checkpoint& ckpt, const Calibration& cal, const ConvertInfo& info, format::Writer* w)
      : ck_(ckpt), cfg_(ckpt.config()), cal_(cal), info_(info), w_(w) {}

  void run() {
    const int depth = cfg_.depth;
    VITINT_ASSERT(cal_.streams.size() == static_cast<size_t>(StreamPoints(cfg_).count()));
    for (size_t p = 0; p < cal_.streams.size(); ++p) {
      const StreamCalib& sc = cal_.streams[p];
      streams_.push_back({stream_grid(sc.range, info_.recipe.residual_bits, info_.recipe.pts), sc.alpha});
      json s;
      s["bits"] = info_.recipe.residual_bits;
      s["zero_point"] = streams_.back().grid.zero_point;
      s["qmin"] = streams_.back().grid.qmin;
      s["qmax"] = streams_.back().grid.qmax;
      quant_["streams"].push_back(s);
      add(w_, vit::stream_alpha(static_cast<int>(p)), {cfg_.embed_dim}, sc.alpha);
    }
    // One GELU (or QuickGELU) table, shared by all blocks.
    add(w_, "gelu_table", {kernels::kGeluTableSize}, cfg_.quick_gelu ? kernels::quick_gelu_table() : kernels::gelu_table());
    layer("patch_embed", [&] { patch_embed(); });
    if (cfg_.pre_norm) {
      // norm_pre: from the embedding's stream point onto block 0's input.
      layer("norm_pre", [&] {
        quant_["norm_pre"] = layernorm("norm_pre", "norm_pre", stream_at(vit::embed_point(depth)), stream_outs(0));
      });
    }
    for (int b = 0; b < depth; ++b) layer("blocks." + std::to_string(b), [&] { block(b); });
    layer("norm and head", [&] {
      const std::vector<ActQuant> head_in = folded_quant("norm", cal_.head_in, cal_.head_in_channels,
                                                         cal_.head_in_rows, "head.weight", info_.recipe.channel_ln);
      const Stream& in = stream_at(2 * depth);
      if (cfg_.norm_before_pool()) {
        // The final norm onto a stream of its own; the sum of the patch
        // tokens' codes there (less the zero point) is requantized to the
        // head's input: s_out(c) / (n * s_head(c)) per channel.
        const int point = vit::norm_out_point(depth, cfg_.pre_norm);
        quant_["norm"] = layernorm("norm", "norm", in, stream_outs(point));
        DyadicVec dy;
        std::vector<uint8_t> zp;
        for (int c = 0; c < cfg_.embed_dim; ++c) {
          const ActQuant& h = head_in[static_cast<size_t>(c)];
          dy.push(stream_at(point).scale(c) / (double(cfg_.num_patches()) * h.scale));
          zp.push_back(static_cast<uint8_t>(h.zero_point));
        }
        add(w_, "pool.mult", {cfg_.embed_dim}, dy.mult);
        add(w_, "pool.shift", {cfg_.embed_dim}, dy.shift);
        add(w_, "pool.zero_point", {cfg_.embed_dim}, zp);
      } else {
        // Average pooling: the mean of the patch tokens' stream codes, then fc_norm.
        quant_["norm"] = layernorm("norm", cfg_.avg_pool ? "fc_norm" : "norm", in, head_in);
      }
      head(InQuant::channels(head_in));
    });
    quant_["attention_bits"] = info_.recipe.attention_bits;
    quant_["lis_normalize"] = info_.recipe.lis_normalize ? 1 : 0;
    quant_["residual_bits"] = info_.recipe.residual_bits;
    w_->set_metadata(metadata());
  }

 private:
  const float* t(const std::string& name) const { return ck_.get(name).data.data(); }

  // One layer's quantization, its errors naming the layer: a ratio or value
  // that does not fit the format means weights or calibrated ranges far
  // outside a trained ViT's.
  template <class F>
  static void layer(const std::string& name, F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      throw Error("quantizing " + name + ": " + e.what() +
                  " (its weights or calibrated activations are out of range: a corrupt checkpoint?)");
    }
  }

  json metadata() const {
    json m;
    m["family"] = vit::kFamily;
    m["family_revision"] = vit::kRevision;
    m["architecture"] = cfg_.architecture;
    m["tag"] = cfg_.tag;
    m["hparams"] = {{"image_size", cfg_.image_size}, {"patch_size", cfg_.patch_size},
                    {"embed_dim", cfg_.embed_dim},   {"depth", cfg_.depth},
                    {"num_heads", cfg_.num_heads},   {"mlp_hidden", cfg_.mlp_hidden},
                    {"num_classes", cfg_.num_classes}, {"ln_eps", cfg_.ln_eps}};
    if (cfg_.distilled) {
      m["family_revision"] = vit::kRevisionDistilled;
      m["hparams"]["prefix_tokens"] = cfg_.prefix_tokens();
    }
    if (cfg_.pre_norm) {
      m["family_revision"] = vit::kRevisionPreNorm;
      m["hparams"]["pre_norm"] = 1;
    }
    if (!cfg_.class_token || cfg_.reg_tokens > 0 || cfg_.avg_pool) {
      m["family_revision"] = vit::kRevisionPooling;
      m["hparams"]["class_token"] = cfg_.class_token ? 1 : 0;
      m["hparams"]["reg_tokens"] = cfg_.reg_tokens;
      m["hparams"]["pool"] = cfg_.avg_pool ? "avg" : "token";
      if (cfg_.avg_pool) m["hparams"]["fc_norm"] = cfg_.fc_norm ? 1 : 0;
    }
    m["preprocess"] = {{"input_size", cfg_.image_size},
                       {"crop_pct", cfg_.crop_pct},
                       {"interpolation", interpolation_name(cfg_.interpolation)},
                       {"mean", cfg_.mean},
                       {"std", cfg_.std}};
    if (!info_.labels.empty()) m["labels"] = info_.labels;
    m["calibration"] = recipe_json(info_.recipe);
    m["calibration"]["weights"] = "int8 symmetric per output channel";
    m["calibration"]["images"] = info_.calib_count;
    m["calibration"]["list"] = utf8_text(info_.calib_list);  // a path as given
    m["converter"] = {{"name", "vitint-convert"}, {"version", VITINT_CONVERTER_VERSION}};
    m["quant"] = quant_;
    m["calibration"]["channel_folding"] = folding_;
    return m;
  }

  // The int32 bias folds the zero-point correction -sum_c Wq[j][c] * zp_c.
  std::vector<int32_t> int_bias(const QWeight& qw, const float* b, const std::string& name) {
    std::vector<int32_t> bias(static_cast<size_t>(qw.n));
    for (int j = 0; j < qw.n; ++j) {
      const auto js = static_cast<size_t>(j);
      bias[js] = to_i32((b ? b[j] / qw.scale[js] : 0.0) - double(qw.zp_sum[js]), name + ".bias");
    }
    return bias;
  }

  // Per-channel quantizers of a linear layer's input whose scales fold into
  // its weights `w` [n][k]: s'_c = s_c^a * s_t^(1-a) (s_t the per-tensor
  // scale, so every channel's range stays covered), a chosen from a grid by
  // the layer's output error on sampled calibration rows, with both the
  // input and the folded weights quantized as the engine does.
  std::vector<ActQuant> folded_quant(const std::string& layer, const Range& tensor, const std::vector<Range>& ch,
                                     const RowSample& sample, const std::string& weight, bool allow) {
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Tensor& wt = ck_.get(weight);
    const int n = static_cast<int>(wt.shape[0]), k = static_cast<int>(wt.shape[1]);
    VITINT_ASSERT(static_cast<size_t>(k) == ch.size() && sample.cols == k);
    const double st = act_quant(tensor).scale;
    auto quant_for = [&](double a) {
      std::vector<ActQuant> q;
      for (const Range& r : ch) q.push_back(folded_channel_quant(r, st, a));
      return q;
    };
    if (!allow) {
      folding_[layer] = 0;
      return quant_for(0);
    }
    const Eigen::Map<const Mat> x(sample.rows.data(), sample.count, k);
    const Eigen::Map<const Mat> w(wt.data.data(), n, k);
    const Mat y = x * w.transpose();
    double best_a = 0, best_err = std::numeric_limits<double>::infinity();
    for (double a : {0.0, 0.25, 0.5, 0.75, 1.0}) {
      const InQuant in = InQuant::channels(quant_for(a));
      // Integer input codes and folded weights, exactly as the engine sees them.
      Mat xq(x.rows(), k), wq(n, k);
      for (Eigen::Index i = 0; i < x.rows(); ++i)
        for (int c = 0; c < k; ++c) {
          const auto ci = static_cast<size_t>(c);
          const double zp = in.zero_point[ci];
          xq(i, c) = static_cast<float>(std::clamp(std::round(x(i, c) / in.scale[ci]) + zp, 0.0, 255.0) - zp);
        }
      const QWeight qw = quantize_weight(wt.data.data(), n, k, in);
      for (int j = 0; j < n; ++j)
        for (int c = 0; c < k; ++c)
          wq(j, c) = static_cast<float>(qw.q[static_cast<size_t>(j) * k + c] * qw.scale[static_cast<size_t>(j)]);
      const double err = (xq * wq.transpose() - y).cast<double>().squaredNorm();
      if (err < best_err) {
        best_err = err;
        best_a = a;
      }
    }
    folding_[layer] = best_a;
    return quant_for(best_a);
  }

  void add_weight(const std::string& name, const QWeight& qw) { add(w_, name + ".weight", {qw.n, qw.k}, qw.q); }

  const Stream& stream_at(int point) const { return streams_[static_cast<size_t>(point)]; }
  // A LayerNorm's output quantizers for writing onto stream point `point`.
  std::vector<ActQuant> stream_outs(int point) const {
    std::vector<ActQuant> outs;
    for (int c = 0; c < cfg_.embed_dim; ++c) outs.push_back({stream_at(point).scale(c), stream_at(point).grid.zero_point});
    return outs;
  }

  // LayerNorm `name` of the model file from checkpoint tensors `src`.weight/.bias.
  json layernorm(const std::string& name, const std::string& src, const Stream& in, const std::vector<ActQuant>& outs) {
    const int d = cfg_.embed_dim;
    const float* gamma = t(src + ".weight");
    const float* beta = t(src + ".bias");
    double gmax = 1e-12, bmax = 0;
    for (int c = 0; c < d; ++c) {
      const ActQuant& out = outs[static_cast<size_t>(c)];
      gmax = std::max(gmax, std::fabs(gamma[c] / out.scale));
      bmax = std::max(bmax, std::fabs(beta[c] / out.scale + out.zero_point) + 1.0);
    }
    int g = 30;
    while (g > 0 && (gmax * std::ldexp(1.0, g) >= std::ldexp(1.0, 22) || bmax * std::ldexp(1.0, 16 + g) >= std::ldexp(1.0, 50))) --g;
    std::vector<int32_t> gq(static_cast<size_t>(d));
    std::vector<int64_t> bq(static_cast<size_t>(d));
    for (int c = 0; c < d; ++c) {
      const ActQuant& out = outs[static_cast<size_t>(c)];
      gq[static_cast<size_t>(c)] = static_cast<int32_t>(std::llround(gamma[c] / out.scale * std::ldexp(1.0, g)));
      bq[static_cast<size_t>(c)] = std::llround((beta[c] / out.scale + out.zero_point) * std::ldexp(1.0, 16 + g)) +
                                   (int64_t{1} << (15 + g));
    }
    add(w_, name + ".gamma", {d}, gq);
    add(w_, name + ".beta", {d}, bq);
    const double s = in.grid.base_scale;
    const double eps_term = double(d) * d * cfg_.ln_eps / (s * s);
    return {{"eps_term", static_cast<int64_t>(std::min(std::round(eps_term), std::ldexp(1.0, 40)))}, {"g_shift", g}};
  }

  void patch_embed() {
    const int d = cfg_.embed_dim, p = cfg_.patch_size, k = 3 * p * p, np = cfg_.num_patches();
    const float* w = t("patch_embed.proj.weight");
    const float* b = t("patch_embed.proj.bias");
    // Fold the normalization into the conv: the engine feeds raw 0..255 pixels.
    std::vector<float> wf(static_cast<size_t>(d) * k);
    std::vector<double> bf(static_cast<size_t>(d));
    for (int j = 0; j < d; ++j) {
      double bias = b[j];
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < p * p; ++i) {
          const size_t idx = static_cast<size_t>(j) * k + static_cast<size_t>(c) * p * p + i;
          wf[idx] = static_cast<float>(w[idx] / (255.0 * cfg_.std[static_cast<size_t>(c)]));
          bias -= double(w[idx]) * cfg_.mean[static_cast<size_t>(c)] / cfg_.std[static_cast<size_t>(c)];
        }
      bf[static_cast<size_t>(j)] = bias;
    }
    // Raw pixels: scale 1, zero point 0.
    const QWeight qw = quantize_weight(wf.data(), d, k, InQuant::tensor({1.0, 0}, k));
    add_weight("patch", qw);
    // A pre-norm ViT's embedding has a stream point of its own.
    const Stream& out = stream_at(cfg_.pre_norm ? vit::embed_point(cfg_.depth) : 0);
    const float* pos = t("pos_embed");
    const int prefix = cfg_.prefix_tokens();
    std::vector<int32_t> pos_bias(static_cast<size_t>(np) * d);
    DyadicVec dy;
    for (int j = 0; j < d; ++j) {
      const double s_acc = qw.scale[static_cast<size_t>(j)];
      dy.push(s_acc / out.scale(j));
      for (int tkn = 0; tkn < np; ++tkn)
        pos_bias[static_cast<size_t>(tkn) * d + j] = to_i32(
            (bf[static_cast<size_t>(j)] + pos[static_cast<size_t>(tkn + prefix) * d + j]) / s_acc, "patch.pos_bias");
    }
    add(w_, "patch.pos_bias", {np, d}, pos_bias);
    add(w_, "patch.mult", {d}, dy.mult);
    add(w_, "patch.shift", {d}, dy.shift);
    // The class, distillation and register tokens plus their position rows
    // (zero for register tokens), on the stream's grid: `count` rows of
    // checkpoint tensor `token` from token position `position` on.
    int position = 0;
    auto token_rows = [&](const char* token, int count) {
      const float* v = t(token);
      std::vector<int16_t> rows(static_cast<size_t>(count) * d);
      for (int r = 0; r < count; ++r, ++position)
        for (int j = 0; j < d; ++j) {
          const size_t at = static_cast<size_t>(r) * d + j;
          const double q = std::round((v[at] + pos[static_cast<size_t>(position) * d + j]) / out.scale(j)) + out.grid.zero_point;
          rows[at] = static_cast<int16_t>(std::clamp<double>(q, out.grid.qmin, out.grid.qmax));
        }
      return rows;
    };
    if (cfg_.class_token) add(w_, "cls", {d}, token_rows("cls_token", 1));
    if (cfg_.distilled) add(w_, "dist", {d}, token_rows("dist_token", 1));
    if (cfg_.reg_tokens > 0) add(w_, "reg", {cfg_.reg_tokens, d}, token_rows("reg_token", cfg_.reg_tokens));
  }

  // Linear whose output is requantized to per-channel uint8 quantizers.
  // Quantizes a linear layer. With bias correction (Liu et al. 2021), the
  // bias absorbs the expected output shift of the weight rounding,
  // sum_c (Wdeq[j][c] - W[j][c]) * E[x_c], from the calibration means.
  QWeight linear_weight(const std::string& name, const std::string& src, const InQuant& in,
                        const std::vector<Range>& in_stats) {
    const Tensor& wt = ck_.get(src + ".weight");
    const int n = static_cast<int>(wt.shape[0]), k = static_cast<int>(wt.shape[1]);
    VITINT_ASSERT(in_stats.size() == static_cast<size_t>(k));
    QWeight qw = quantize_weight(wt.data.data(), n, k, in);
    add_weight(name, qw);
    const float* b = t(src + ".bias");
    std::vector<float> bias(b, b + n);
    if (info_.recipe.bias_correction) {
      for (int j = 0; j < n; ++j) {
        double shift = 0;
        for (int c = 0; c < k; ++c) {
          const auto cs = static_cast<size_t>(c);
          const double deq = qw.q[static_cast<size_t>(j) * k + c] * qw.scale[static_cast<size_t>(j)] / in.scale[cs];
          shift += (deq - wt.data[static_cast<size_t>(j) * k + c]) * in_stats[cs].mean;
        }
        bias[static_cast<size_t>(j)] = static_cast<float>(bias[static_cast<size_t>(j)] - shift);
      }
    }
    add(w_, name + ".bias", {n}, int_bias(qw, bias.data(), name));
    return qw;
  }

  void linear_u8(const std::string& name, const std::string& src, const InQuant& in,
                 const std::vector<Range>& in_stats, const std::vector<ActQuant>& out_per_channel) {
    const QWeight qw = linear_weight(name, src, in, in_stats);
    const int n = qw.n;
    DyadicVec dy;
    std::vector<uint8_t> zp(static_cast<size_t>(n));
    for (int j = 0; j < n; ++j) {
      const ActQuant& o = out_per_channel[static_cast<size_t>(j)];
      dy.push(qw.scale[static_cast<size_t>(j)] / o.scale);
      zp[static_cast<size_t>(j)] = static_cast<uint8_t>(o.zero_point);
    }
    add(w_, name + ".mult", {n}, dy.mult);
    add(w_, name + ".shift", {n}, dy.shift);
    add(w_, name + ".zero_point", {n}, zp);
  }

  // Linear whose output is added to the residual stream (point -> point + 1).
  void linear_residual(const std::string& name, const std::string& src, const InQuant& in,
                       const std::vector<Range>& in_stats, int point) {
    const QWeight qw = linear_weight(name, src, in, in_stats);
    const int n = qw.n;
    const Stream& from = streams_[static_cast<size_t>(point)];
    const Stream& to = streams_[static_cast<size_t>(point + 1)];
    DyadicVec branch, skip;
    for (int j = 0; j < n; ++j) {
      branch.push(qw.scale[static_cast<size_t>(j)] / to.scale(j));
      skip.push(from.scale(j) / to.scale(j));
    }
    add(w_, name + ".mult", {n}, branch.mult);
    add(w_, name + ".shift", {n}, branch.shift);
    add(w_, name + ".skip_mult", {n}, skip.mult);
    add(w_, name + ".skip_shift", {n}, skip.shift);
  }

  void block(int b) {
    const int d = cfg_.embed_dim, hd = cfg_.head_dim();
    auto name = [b](const std::string& s) { return vit::block(b, s); };
    auto src = [b](const std::string& s) { return "blocks." + std::to_string(b) + "." + s; };
    const auto i = static_cast<size_t>(b);
    json bj;
    const std::vector<ActQuant> ln1 =
        folded_quant(name("ln1"), cal_.ln1[i], cal_.ln1_channels[i], cal_.ln1_rows[i], src("attn.qkv.weight"), info_.recipe.channel_ln);
    bj["ln1"] = layernorm(name("ln1"), src("norm1"), streams_[2 * i], ln1);

    const ActQuant q = act_quant(cal_.q[i]), kq = act_quant(cal_.k[i]), v = act_quant(cal_.v[i]);
    std::vector<ActQuant> outs;
    for (int j = 0; j < 3 * d; ++j) outs.push_back(j < d ? q : (j < 2 * d ? kq : v));
    linear_u8(name("qkv"), src("attn.qkv"), InQuant::channels(ln1), cal_.ln1_channels[i], outs);

    // The attention context (proj input), per channel folded into proj.
    const std::vector<ActQuant> ao = folded_quant(name("attn.out"), cal_.attn_out[i], cal_.attn_out_channels[i],
                                                  cal_.attn_out_rows[i], src("attn.proj.weight"), info_.recipe.channel_attn);
    const double logit_scale = q.scale * kq.scale / std::sqrt(double(hd));
    const kernels::Dyadic to_exp = kernels::make_dyadic(logit_scale / (std::log(2.0) / (1 << kernels::kToExpBits)));
    const double p_scale = info_.recipe.attention_bits == 8 ? 1.0 / 255.0 : 1.0 / 16384.0;
    DyadicVec out;
    std::vector<uint8_t> out_zp(static_cast<size_t>(d));
    for (int c = 0; c < d; ++c) {
      out.push(p_scale * v.scale / ao[static_cast<size_t>(c)].scale);
      out_zp[static_cast<size_t>(c)] = static_cast<uint8_t>(ao[static_cast<size_t>(c)].zero_point);
    }
    add(w_, name("attn.out_mult"), {d}, out.mult);
    add(w_, name("attn.out_shift"), {d}, out.shift);
    add(w_, name("attn.out_zero_point"), {d}, out_zp);
    bj["attn"] = {{"zq", q.zero_point},          {"zv", v.zero_point - 128},
                  {"to_exp_mult", to_exp.mult}, {"to_exp_shift", to_exp.shift}};
    linear_residual(name("proj"), src("attn.proj"), InQuant::channels(ao), cal_.attn_out_channels[i], 2 * b);

    const std::vector<ActQuant> ln2 =
        folded_quant(name("ln2"), cal_.ln2[i], cal_.ln2_channels[i], cal_.ln2_rows[i], src("mlp.fc1.weight"), info_.recipe.channel_ln);
    bj["ln2"] = layernorm(name("ln2"), src("norm2"), streams_[2 * i + 1], ln2);
    // fc1 -> GELU in 2^-10 units (no 8-bit bottleneck) -> fc2 input, per
    // channel (the channel scales fold into fc2's weights).
    const int h = cfg_.mlp_hidden;
    const QWeight f1 = linear_weight(name("fc1"), src("mlp.fc1"), InQuant::channels(ln2), cal_.ln2_channels[i]);
    const std::vector<ActQuant> ge =
        folded_quant(name("gelu"), cal_.gelu[i], cal_.gelu_channels[i], cal_.gelu_rows[i], src("mlp.fc2.weight"), info_.recipe.channel_gelu);
    DyadicVec to_fixed, to_out;
    std::vector<uint8_t> zp(static_cast<size_t>(h));
    for (int j = 0; j < h; ++j) {
      const auto js = static_cast<size_t>(j);
      to_fixed.push(f1.scale[js] * (1 << kernels::kGeluFracBits));
      to_out.push(1.0 / (1 << kernels::kGeluFracBits) / ge[js].scale);
      zp[js] = static_cast<uint8_t>(ge[js].zero_point);
    }
    add(w_, name("fc1.mult"), {h}, to_fixed.mult);
    add(w_, name("fc1.shift"), {h}, to_fixed.shift);
    add(w_, name("fc1.zero_point"), {h}, zp);
    add(w_, name("gelu.mult"), {h}, to_out.mult);
    add(w_, name("gelu.shift"), {h}, to_out.shift);
    linear_residual(name("fc2"), src("mlp.fc2"), InQuant::channels(ge), cal_.gelu_channels[i], 2 * b + 1);
    quant_["blocks"].push_back(bj);
  }

  // The classifier (and a distilled DeiT's second one, on the same
  // quantized final-norm output).
  void head(const InQuant& in) {
    std::vector<std::string> heads{"head"};
    if (cfg_.distilled) heads.push_back("head_dist");
    for (const std::string& name : heads) {
      const QWeight qw = linear_weight(name, name, in, cal_.head_in_channels);
      const int n = qw.n;
      std::vector<float> scale(static_cast<size_t>(n));
      for (int j = 0; j < n; ++j) scale[static_cast<size_t>(j)] = static_cast<float>(qw.scale[static_cast<size_t>(j)]);
      add(w_, name + ".scale", {n}, scale);
    }
  }

  const Checkpoint& ck_;
  const VitConfig& cfg_;
  const Calibration& cal_;
  const ConvertInfo& info_;
  format::Writer* w_;
  std::vector<Stream> streams_;
  json quant_;
  std::map<std::string, double> folding_;  // chosen exponent a per folded quantizer
};

}  // namespace

void quantize_vit(const Checkpoint& ckpt, const Calibration& cal, const ConvertInfo& info, format::Writer* out) {
  VitQuantizer(ckpt, cal, info, out).run();
}

}  // namespace vitint::convert
