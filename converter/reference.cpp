// FP32 forward of timm's VisionTransformer (pre-norm blocks, class-token
// head) with Eigen row-major GEMMs. Operation order follows timm/PyTorch so
// that float32 results agree with timm to rounding noise.
#include "converter/reference.h"

#include <Eigen/Core>
#include <unsupported/Eigen/SpecialFunctions>
#include <cmath>

#include "vitint/error.h"

namespace vitint::convert {

namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMap = Eigen::Map<const Mat>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using ConstRowMap = Eigen::Map<const RowVec>;

ConstMap weight(const Checkpoint& ck, const std::string& name) {
  const Tensor& t = ck.get(name);
  VITINT_ASSERT(t.shape.size() == 2);
  return ConstMap(t.data.data(), t.shape[0], t.shape[1]);
}

ConstRowMap vec(const Checkpoint& ck, const std::string& name) {
  const Tensor& t = ck.get(name);
  return ConstRowMap(t.data.data(), static_cast<Eigen::Index>(t.numel()));
}

// LayerNorm over each row; statistics in double (PyTorch accumulates more
// precisely than a naive float sum, double is the closer imitation).
void layer_norm(const Mat& x, const ConstRowMap& gamma, const ConstRowMap& beta, float eps,
                Mat& out) {
  const Eigen::Index rows = x.rows(), cols = x.cols();
  out.resize(rows, cols);
  for (Eigen::Index r = 0; r < rows; ++r) {
    const float* in = x.data() + r * cols;
    double sum = 0.0;
    for (Eigen::Index c = 0; c < cols; ++c) sum += in[c];
    const double mean = sum / static_cast<double>(cols);
    double sq = 0.0;
    for (Eigen::Index c = 0; c < cols; ++c) {
      const double d = in[c] - mean;
      sq += d * d;
    }
    const double var = sq / static_cast<double>(cols);  // biased, as torch
    const float rstd = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
    const float meanf = static_cast<float>(mean);
    float* o = out.data() + r * cols;
    for (Eigen::Index c = 0; c < cols; ++c) o[c] = (in[c] - meanf) * rstd * gamma[c] + beta[c];
  }
}

constexpr float kSqrtHalf = 0.70710678118654752440f;

// y = x W^T + b (torch.nn.Linear)
void linear(const Mat& x, const ConstMap& w, const ConstRowMap& b, Mat& y) {
  y.resize(x.rows(), w.rows());
  y.noalias() = x * w.transpose();
  y.rowwise() += b;
}

void notify(Observer* obs, Site site, int block, const Mat& m) {
  if (obs) obs->observe(site, block, m.data(), static_cast<int>(m.rows()), static_cast<int>(m.cols()));
}

}  // namespace

ReferenceModel::ReferenceModel(const Checkpoint& ckpt) : ckpt_(ckpt) {
  // Eigen's lazily computed cache sizes must exist before concurrent forwards.
  Eigen::initParallel();
  const VitConfig& c = ckpt_.config();
  VITINT_ASSERT(c.embed_dim > 0 && c.num_heads > 0 && c.embed_dim % c.num_heads == 0);
  VITINT_ASSERT(c.patch_size > 0 && c.image_size % c.patch_size == 0 && c.in_chans == 3);
}

const VitConfig& ReferenceModel::config() const { return ckpt_.config(); }

std::vector<float> ReferenceModel::forward(const uint8_t* image, Observer* observer) const {
  if (image == nullptr) throw Error("ReferenceModel::forward: null image");
  const Checkpoint& ck = ckpt_;
  const VitConfig& c = ck.config();
  const int S = c.image_size, P = c.patch_size, G = S / P, NP = G * G, N = c.num_tokens();
  const int D = c.embed_dim, NH = c.num_heads, DH = c.head_dim();
  const int K = c.in_chans * P * P;

  // ToTensor + Normalize, gathered straight into im2col order: a patch row
  // holds (channel, ky, kx), the layout of the flattened conv weight.
  std::array<float, 3> mean = c.mean, stdv = c.std;
  Mat patches(NP, K);
  for (int py = 0; py < G; ++py)
    for (int px = 0; px < G; ++px) {
      float* row = patches.data() + static_cast<Eigen::Index>(py * G + px) * K;
      for (int ch = 0; ch < 3; ++ch)
        for (int ky = 0; ky < P; ++ky) {
          const uint8_t* src = image + (static_cast<size_t>(py * P + ky) * static_cast<size_t>(S) +
                                        static_cast<size_t>(px * P)) * 3 + static_cast<size_t>(ch);
          float* dst = row + (ch * P + ky) * P;
          for (int kx = 0; kx < P; ++kx)
            dst[kx] = (static_cast<float>(src[3 * kx]) / 255.0f - mean[static_cast<size_t>(ch)]) /
                      stdv[static_cast<size_t>(ch)];
        }
    }

  const Tensor& pe_w = ck.get("patch_embed.proj.weight");
  const ConstMap pe(pe_w.data.data(), D, K);
  const ConstRowMap pe_b = vec(ck, "patch_embed.proj.bias");
  const ConstMap pos(ck.get("pos_embed").data.data(), N, D);

  Mat x(N, D);
  {
    Mat emb;
    linear(patches, pe, pe_b, emb);
    // timm's token order: class, distillation, register tokens, patches.
    int row = 0;
    if (c.class_token) x.row(row) = vec(ck, "cls_token") + pos.row(row), ++row;
    if (c.distilled) x.row(row) = vec(ck, "dist_token") + pos.row(row), ++row;
    if (c.reg_tokens > 0) {
      const ConstMap reg(ck.get("reg_token").data.data(), c.reg_tokens, D);
      for (int r = 0; r < c.reg_tokens; ++r, ++row) x.row(row) = reg.row(r) + pos.row(row);
    }
    x.bottomRows(NP) = emb + pos.bottomRows(NP);
  }
  if (c.pre_norm) {
    notify(observer, Site::kEmbedOut, c.depth, x);
    Mat normed;
    layer_norm(x, vec(ck, "norm_pre.weight"), vec(ck, "norm_pre.bias"), c.ln_eps, normed);
    x = normed;
  }

  const float scale = 1.0f / std::sqrt(static_cast<float>(DH));
  Mat ln, qkv, q(N, D), k(N, D), v(N, D), logits(static_cast<Eigen::Index>(NH) * N, N),
      ctx(N, D), proj, h1, h2;
  for (int b = 0; b < c.depth; ++b) {
    const std::string p = "blocks." + std::to_string(b) + ".";
    notify(observer, Site::kBlockInput, b, x);

    layer_norm(x, vec(ck, p + "norm1.weight"), vec(ck, p + "norm1.bias"), c.ln_eps, ln);
    notify(observer, Site::kLn1Out, b, ln);

    qkv.resize(N, 3 * D);
    qkv.noalias() = ln * weight(ck, p + "attn.qkv.weight").transpose();
    if (c.qkv_bias) qkv.rowwise() += vec(ck, p + "attn.qkv.bias");
    // timm reshapes qkv to (N, 3, heads, dh): q, k, v are consecutive D-wide
    // column blocks, head h at columns h*dh.
    q = qkv.leftCols(D);
    k = qkv.middleCols(D, D);
    v = qkv.rightCols(D);
    notify(observer, Site::kQ, b, q);
    notify(observer, Site::kK, b, k);
    notify(observer, Site::kV, b, v);

    for (int h = 0; h < NH; ++h) {
      auto lg = logits.middleRows(static_cast<Eigen::Index>(h) * N, N);
      lg.noalias() = q.middleCols(h * DH, DH) * k.middleCols(h * DH, DH).transpose();
      lg *= scale;
    }
    notify(observer, Site::kAttnLogits, b, logits);

    for (Eigen::Index r = 0; r < logits.rows(); ++r) {
      auto row = logits.row(r).array();
      const float mx = row.maxCoeff();
      row = (row - mx).exp();
      row *= 1.0f / row.sum();
    }
    for (int h = 0; h < NH; ++h)
      ctx.middleCols(h * DH, DH).noalias() =
          logits.middleRows(static_cast<Eigen::Index>(h) * N, N) * v.middleCols(h * DH, DH);
    notify(observer, Site::kAttnOut, b, ctx);

    linear(ctx, weight(ck, p + "attn.proj.weight"), vec(ck, p + "attn.proj.bias"), proj);
    x += proj;
    notify(observer, Site::kBlockMid, b, x);

    layer_norm(x, vec(ck, p + "norm2.weight"), vec(ck, p + "norm2.bias"), c.ln_eps, ln);
    notify(observer, Site::kLn2Out, b, ln);

    linear(ln, weight(ck, p + "mlp.fc1.weight"), vec(ck, p + "mlp.fc1.bias"), h1);
    notify(observer, Site::kFc1Out, b, h1);
    if (c.quick_gelu) {  // timm's QuickGELU: x * sigmoid(1.702 x)
      h1.array() = h1.array() / (1.0f + (-1.702f * h1.array()).exp());
    } else {  // exact (erf) GELU, as nn.GELU(); Eigen's float erf is accurate to a few ulp
      h1.array() = 0.5f * h1.array() * (1.0f + (h1.array() * kSqrtHalf).erf());
    }
    notify(observer, Site::kGeluOut, b, h1);

    linear(h1, weight(ck, p + "mlp.fc2.weight"), vec(ck, p + "mlp.fc2.bias"), h2);
    x += h2;
  }
  notify(observer, Site::kFinalNormIn, c.depth, x);

  // The final norm is per token; only the class token reaches the head (and
  // the distillation token the second head, timm's eval output being the
  // mean of the two). Average pooling: the mean of the patch tokens, then
  // fc_norm, or of their final norm's outputs.
  Mat head_in;
  if (c.norm_before_pool()) {
    Mat normed;
    layer_norm(x.bottomRows(NP), vec(ck, "norm.weight"), vec(ck, "norm.bias"), c.ln_eps, normed);
    notify(observer, Site::kNormOut, c.depth, normed);
    head_in = normed.colwise().mean();
  } else if (c.avg_pool) {
    const Mat pooled = x.bottomRows(NP).colwise().mean();
    layer_norm(pooled, vec(ck, "fc_norm.weight"), vec(ck, "fc_norm.bias"), c.ln_eps, head_in);
  } else {
    layer_norm(x.topRows(c.head_rows()), vec(ck, "norm.weight"), vec(ck, "norm.bias"), c.ln_eps, head_in);
  }
  notify(observer, Site::kHeadIn, c.depth, head_in);

  Mat out;
  linear(head_in.topRows(1), weight(ck, "head.weight"), vec(ck, "head.bias"), out);
  if (c.distilled) {
    Mat out_dist;
    linear(head_in.bottomRows(1), weight(ck, "head_dist.weight"), vec(ck, "head_dist.bias"), out_dist);
    out = (out + out_dist) / 2;
  }
  return std::vector<float>(out.data(), out.data() + out.size());
}

}  // namespace vitint::convert
