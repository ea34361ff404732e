// ViT / DeiT (class token) graph builder: hyper-parameters and quantization
// parameters from the model file -> integer graph.
#include <cmath>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "engine/src/model_impl.h"
#include "models/vit_spec.h"
#include "vitint/error.h"
#include "vitint/image.h"
#include "vitint/kernels/quant.h"

namespace vitint::models {
namespace {

using format::DType;
using json = nlohmann::json;

// Reads integers out of the metadata with the path in every error message.
class Meta {
 public:
  Meta(const format::Reader& file, const json& node, std::string path)
      : file_(file), node_(node), path_(std::move(path)) {}
  Meta at(const std::string& key) const {
    const std::string p = path_.empty() ? key : path_ + "." + key;
    if (!node_.is_object() || !node_.contains(key)) fail(p, "is missing");
    return Meta(file_, node_.at(key), p);
  }
  Meta at(size_t i) const {
    const std::string p = path_ + "[" + std::to_string(i) + "]";
    if (!node_.is_array() || i >= node_.size()) fail(p, "is missing");
    return Meta(file_, node_.at(i), p);
  }
  int64_t integer(int64_t lo, int64_t hi) const {
    if (!node_.is_number_integer()) fail(path_, "is not an integer");
    const auto v = node_.get<int64_t>();
    if (v < lo || v > hi)
      fail(path_, "= " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }
  int32_t i32(int64_t lo, int64_t hi) const { return static_cast<int32_t>(integer(lo, hi)); }
  double number() const {
    if (!node_.is_number()) fail(path_, "is not a number");
    return node_.get<double>();
  }
  std::string string() const {
    if (!node_.is_string()) fail(path_, "is not a string");
    return node_.get<std::string>();
  }
  const json& raw() const { return node_; }
  bool contains(const std::string& key) const { return node_.is_object() && node_.contains(key); }

 private:
  [[noreturn]] void fail(const std::string& p, const std::string& what) const {
    throw Error("model file " + file_.path() + ": metadata '" + p + "' " + what);
  }
  const format::Reader& file_;
  const json& node_;
  std::string path_;
};

class Builder {
 public:
  Builder(const format::Reader& file, kernels::Isa isa, ModelInfo* info, engine::Graph* graph)
      : file_(file), isa_(isa), info_(*info), g_(*graph), meta_(file, file.metadata(), "") {}

  void build() {
    read_info();
    const int d = info_.embed_dim, h = info_.mlp_hidden, t = tokens_;
    const Meta q = meta_.at("quant");
    stream_ = g_.add_buffer("stream", sizeof(int16_t) * t * d);
    act_ = g_.add_buffer("act", static_cast<size_t>(t) * d);
    qkv_ = g_.add_buffer("qkv", static_cast<size_t>(t) * 3 * d);
    hidden_ = g_.add_buffer("hidden", static_cast<size_t>(t) * h);
    const int head_acc = g_.add_buffer("head_acc", sizeof(int32_t) * 2 * static_cast<size_t>(info_.num_classes));
    const int hd = d / info_.num_heads;
    attn_scratch_ = g_.add_buffer("attention", 0, 0, engine::AttentionOp::scratch_bytes(isa_, t, hd));

    if (pre_norm_) {
      // The embedding in a stream of its own (vit::embed_point), then
      // norm_pre onto block 0's input stream.
      const int embed = g_.add_buffer("embed", sizeof(int16_t) * t * d);
      const int point = vit::embed_point(info_.depth);
      add_patch_embed(q, embed, point);
      auto norm_pre = make_layernorm(q, q.at("norm_pre"), "norm_pre", point, tokens_, embed);
      write_to_stream(norm_pre.get(), q, 0, stream_);
      add(std::move(norm_pre), "norm_pre", "layernorm");
    } else {
      add_patch_embed(q, stream_, 0);
    }
    for (int i = 0; i < info_.depth; ++i) add_block(q, i);
    // The head's input in act_: the final norm of the class (and
    // distillation) token's rows of each image, of the patch tokens' mean
    // (average pooling with fc_norm), or the requantized sum of the patch
    // tokens' final norm (average pooling after the final norm).
    const int head_rows = distilled_ ? 2 : 1;
    const int final_point = 2 * info_.depth;
    if (!avg_pool_) {
      auto norm = make_layernorm(q, q.at("norm"), "norm", final_point, head_rows, stream_);
      norm->out = act_;
      add(std::move(norm), "norm", "layernorm");
    } else if (fc_norm_) {
      auto pool = make_pool(stream_, tokens_, prefix_, /*sum_out=*/false);
      auto norm = make_layernorm(q, q.at("norm"), "norm", final_point, 1, pool->out);
      norm->tokens = 1;  // the pooled row is the input's only row per image
      norm->out = act_;
      add(std::move(pool), "pool", "average pooling");
      add(std::move(norm), "norm", "layernorm");
    } else {
      const int patches = tokens_ - prefix_;
      auto norm = make_layernorm(q, q.at("norm"), "norm", final_point, patches, stream_);
      norm->first_row = prefix_;
      const StreamPoint sp = write_to_stream(norm.get(), q, vit::norm_out_point(info_.depth, pre_norm_),
                                             g_.add_buffer("normed", sizeof(int16_t) * static_cast<size_t>(patches) * d));
      auto pool = make_pool(norm->out, patches, 0, /*sum_out=*/true);
      auto rq = std::make_unique<engine::RequantOp>();
      rq->rows_per_image = 1;
      rq->dim = d;
      const std::vector<int32_t> bias(static_cast<size_t>(d), -patches * sp.zp);  // the summed codes' zero point
      const int32_t *mult = nullptr, *shift = nullptr;
      dyadic("pool", ".", d, &mult, &shift);
      rq->channels = requant("pool", d, bias.data(), mult, shift);
      rq->zero_point = file_.tensor("pool.zero_point", DType::kU8, {d}).as<uint8_t>();
      rq->in = pool->out;
      rq->out = act_;
      add(std::move(norm), "norm", "layernorm");
      add(std::move(pool), "pool", "average pooling");
      add(std::move(rq), "pool.requant", "requantize");
    }
    auto head = std::make_unique<engine::HeadOp>();
    pack(head->linear, "head", info_.num_classes, d, /*requant=*/false);
    head->scale = logit_scales("head.scale");
    if (distilled_) {
      pack(head->dist, "head_dist", info_.num_classes, d, /*requant=*/false);
      head->dist_scale = logit_scales("head_dist.scale");
    }
    head->in = act_;
    head->in_ld = head_rows * d;
    head->acc = head_acc;
    add(std::move(head), "head", "head");
  }

 private:
  void read_info() {
    const Meta hp = meta_.at("hparams");
    info_.architecture = meta_.at("architecture").string();
    info_.tag = meta_.contains("tag") ? meta_.at("tag").string() : "";
    info_.image_size = hp.at("image_size").i32(16, 4096);
    info_.patch_size = hp.at("patch_size").i32(1, 64);
    if (info_.image_size % info_.patch_size != 0)
      throw Error("model file " + file_.path() + ": image_size is not a multiple of patch_size");
    info_.embed_dim = hp.at("embed_dim").i32(8, 4096);
    info_.depth = hp.at("depth").i32(1, 128);
    info_.num_heads = hp.at("num_heads").i32(1, 64);
    if (info_.embed_dim % info_.num_heads != 0)
      throw Error("model file " + file_.path() + ": embed_dim is not a multiple of num_heads");
    info_.mlp_hidden = hp.at("mlp_hidden").i32(1, 16384);
    info_.num_classes = hp.at("num_classes").i32(1, 100000);
    const int grid = info_.image_size / info_.patch_size;
    const int revision = meta_.contains("family_revision") ? meta_.at("family_revision").i32(1, 1 << 20) : 1;
    if (revision > vit::kLatestRevision)
      throw Error("model file " + file_.path() + ": family_revision " + std::to_string(revision) +
                  " is newer than this libvitint reads (" + std::to_string(vit::kLatestRevision) + ")");
    // hparams.prefix_tokens 2 (revision 2): a distilled DeiT's class and distillation token.
    distilled_ = hp.contains("prefix_tokens") && hp.at("prefix_tokens").i32(1, 2) == 2;
    if (distilled_ && revision < vit::kRevisionDistilled)
      throw Error("model file " + file_.path() + ": hparams.prefix_tokens 2 needs family_revision " +
                  std::to_string(vit::kRevisionDistilled));
    const bool layout = hp.contains("class_token") || hp.contains("reg_tokens") || hp.contains("pool");
    if (layout && revision < vit::kRevisionPooling)
      throw Error("model file " + file_.path() + ": hparams.class_token, reg_tokens and pool need family_revision " +
                  std::to_string(vit::kRevisionPooling));
    class_token_ = !hp.contains("class_token") || hp.at("class_token").i32(0, 1) == 1;
    reg_tokens_ = hp.contains("reg_tokens") ? hp.at("reg_tokens").i32(0, 16) : 0;
    if (hp.contains("pool")) {
      const std::string pool = hp.at("pool").string();
      if (pool != "token" && pool != "avg")
        throw Error("model file " + file_.path() + ": hparams.pool '" + pool + "' is neither 'token' nor 'avg'");
      avg_pool_ = pool == "avg";
    }
    fc_norm_ = !hp.contains("fc_norm") || hp.at("fc_norm").i32(0, 1) == 1;
    if (!fc_norm_ && (!avg_pool_ || revision < vit::kRevisionPooling))
      throw Error("model file " + file_.path() + ": hparams.fc_norm 0 needs pool 'avg' and family_revision " +
                  std::to_string(vit::kRevisionPooling));
    if (!class_token_ && !avg_pool_)
      throw Error("model file " + file_.path() + ": without a class token (hparams.class_token 0) the pool must be 'avg'");
    if (distilled_ && (!class_token_ || reg_tokens_ > 0 || avg_pool_))
      throw Error("model file " + file_.path() + ": a distilled model (hparams.prefix_tokens 2) has a class token, "
                  "no register tokens and class-token pooling");
    prefix_ = (class_token_ ? 1 : 0) + (distilled_ ? 1 : 0) + reg_tokens_;
    pre_norm_ = hp.contains("pre_norm") && hp.at("pre_norm").i32(0, 1) == 1;
    if (pre_norm_ && revision < vit::kRevisionPreNorm)
      throw Error("model file " + file_.path() + ": hparams.pre_norm needs family_revision " +
                  std::to_string(vit::kRevisionPreNorm));
    tokens_ = grid * grid + prefix_;
    if (tokens_ > 1025) throw Error("model file " + file_.path() + ": too many tokens (at most 1025)");
    const Meta pre = meta_.at("preprocess");
    info_.crop_pct = pre.at("crop_pct").number();
    if (!(info_.crop_pct > 0.0 && info_.crop_pct <= 1.0))
      throw Error("model file " + file_.path() + ": preprocess.crop_pct must be in (0, 1]");
    info_.interpolation = parse_interpolation(pre.at("interpolation").string());
    const Meta q = meta_.at("quant");
    info_.attention_bits = q.at("attention_bits").i32(4, 8);
    if (info_.attention_bits != 4 && info_.attention_bits != 8)
      throw Error("model file " + file_.path() + ": quant.attention_bits must be 4 or 8");
    info_.residual_bits = q.at("residual_bits").i32(8, 16);
    info_.recipe = meta_.contains("calibration") ? meta_.at("calibration").raw().dump() : "{}";
    info_.converter_version = meta_.contains("converter") ? meta_.at("converter").raw().dump() : "";
    info_.labels.clear();
    if (meta_.contains("labels")) {
      const json& labels = meta_.at("labels").raw();
      if (!labels.is_array() || labels.size() != static_cast<size_t>(info_.num_classes))
        throw Error("model file " + file_.path() + ": metadata 'labels' must list num_classes strings");
      for (const auto& l : labels) {
        if (!l.is_string()) throw Error("model file " + file_.path() + ": metadata 'labels' holds a non-string");
        info_.labels.push_back(l.get<std::string>());
      }
    }
  }

  const int32_t* i32s(const std::string& name, int64_t n) const {
    return file_.tensor(name, DType::kS32, {n}).as<int32_t>();
  }
  // The head's float scales (accumulator units -> logits): finite and at
  // most 2^32 in magnitude, so that every logit (|acc + bias| < 2^33) is
  // finite.
  const float* logit_scales(const std::string& name) const {
    const float* s = file_.tensor(name, DType::kF32, {info_.num_classes}).as<float>();
    for (int i = 0; i < info_.num_classes; ++i) {
      if (std::fabs(s[i]) <= 0x1p32f) continue;
      std::ostringstream value;
      value << s[i];
      throw Error("model file " + file_.path() + ": tensor '" + name + "' element " + std::to_string(i) + " (" +
                  value.str() + ") is not a finite scale of at most 2^32");
    }
    return s;
  }
  // Per-channel dyadic multipliers: tensors `name + sep + "mult"` and
  // `name + sep + "shift"`. Shifts must stay inside [0, 62] and multipliers
  // non-negative, or apply_dyadic is undefined: checked here, once.
  void dyadic(const std::string& name, const char* sep, int64_t n, const int32_t** mult_out,
              const int32_t** shift_out) const {
    const int32_t* mult = *mult_out = i32s(name + sep + "mult", n);
    const int32_t* shift = *shift_out = i32s(name + sep + "shift", n);
    for (int64_t i = 0; i < n; ++i)
      if (mult[i] < 0 || shift[i] < 0 || shift[i] > 62)
        throw Error("model file " + file_.path() + ": tensor '" + name + "' element " + std::to_string(i) +
                    " has an invalid dyadic multiplier (" + std::to_string(mult[i]) + " * 2^-" +
                    std::to_string(shift[i]) + ")");
  }

  // The 16-bit requantizations' contract |acc + b| < 2^31 with |acc| <= 2^30
  // (any GEMM with k <= 32896) and the rounding term b - bias <= 2^29, for
  // a bias tensor of the file (qkv, fc1; the graph's own biases, pooling's
  // zero-point term and the attention output's zeros, are far inside).
  void check_bias(const std::string& name, int64_t n, const int32_t* bias) const {
    for (int64_t i = 0; i < n; ++i)
      if (bias[i] < -(1 << 29) || bias[i] > (1 << 29))
        throw Error("model file " + file_.path() + ": tensor '" + name + ".bias' element " + std::to_string(i) + " (" +
                    std::to_string(bias[i]) + ") is outside [-2^29, 2^29]");
  }

  // requant_u8's numbers for `name`'s dyadics, which must be below 1 (an
  // output step no finer than the accumulator's), and bias (null: none).
  kernels::RequantChannels requant(const std::string& name, int n, const int32_t* bias, const int32_t* mult,
                                   const int32_t* shift) const {
    for (int i = 0; i < n; ++i)
      if (!kernels::requant_ratio_ok(mult[i], shift[i]))
        throw Error("model file " + file_.path() + ": requantization '" + name + "' element " + std::to_string(i) +
                    " has a ratio " + std::to_string(mult[i]) + " * 2^-" + std::to_string(shift[i]) +
                    " >= 1 (an output step finer than the accumulator's), which the engine does not run");
    return kernels::requant_channels(n, bias, mult, shift);
  }

  // Linear layers with a bias; the head has no requantization (it leaves in
  // float). (The patch embedding, whose bias is folded into patch.pos_bias,
  // packs its weights itself: PatchEmbedOp::pack_weights.)
  void pack(engine::PackedLinear& lin, const std::string& name, int n, int k, bool requant = true) const {
    const auto* w = file_.tensor(name + ".weight", DType::kS8, {n, k}).as<int8_t>();
    lin.pack(isa_, w, n, k);
    lin.bias = i32s(name + ".bias", n);
    if (requant) {
      dyadic(name, ".", n, &lin.mult, &lin.shift);
    }
  }

  struct StreamPoint {
    int32_t zp, qmin, qmax;
    const uint8_t* alpha;
  };
  StreamPoint stream_point(const Meta& q, int point) const {
    const Meta s = q.at("streams").at(static_cast<size_t>(point));
    StreamPoint p{};
    const int bits = s.at("bits").i32(8, 16);
    const int32_t lo = bits == 16 ? -32768 : 0, hi = bits == 16 ? 32767 : 255;
    p.qmin = s.at("qmin").i32(lo, hi);
    p.qmax = s.at("qmax").i32(p.qmin, hi);
    p.zp = s.at("zero_point").i32(p.qmin, p.qmax);
    const std::string name = vit::stream_alpha(point);
    p.alpha = file_.tensor(name, DType::kU8, {info_.embed_dim}).as<uint8_t>();
    for (int c = 0; c < info_.embed_dim; ++c)
      if (p.alpha[c] > 3) throw Error("model file " + file_.path() + ": tensor '" + name + "' holds a shift > 3");
    return p;
  }

  void add(std::unique_ptr<engine::Op> op, std::string name, std::string kind) {
    op->name = std::move(name);
    op->kind = std::move(kind);
    g_.ops.push_back(std::move(op));
  }

  // LayerNorm `name` reading buffer `in`, a stream at quantization point `point`.
  std::unique_ptr<engine::LayerNormOp> make_layernorm(const Meta& q, const Meta& m, const std::string& name, int point,
                                                       int rows_per_image, int in) const {
    const int d = info_.embed_dim;
    auto op = std::make_unique<engine::LayerNormOp>();
    const StreamPoint sp = stream_point(q, point);
    op->tokens = tokens_;
    op->rows_per_image = rows_per_image;
    op->params.channels = d;
    op->params.in = {sp.zp, sp.qmin, sp.qmax, sp.alpha};
    op->params.eps_term = m.at("eps_term").integer(0, int64_t{1} << 40);
    op->params.g_shift = m.at("g_shift").i32(0, 30);
    op->params.gamma = file_.tensor(name + ".gamma", DType::kS32, {d}).as<int32_t>();
    op->params.beta = file_.tensor(name + ".beta", DType::kS64, {d}).as<int64_t>();
    // Keep t * gamma + beta inside int64 (t < 2^23): |gamma| < 2^30, |beta| < 2^52.
    for (int c = 0; c < d; ++c)
      if (op->params.gamma[c] >= (1 << 30) || op->params.gamma[c] <= -(1 << 30) ||
          op->params.beta[c] >= (int64_t{1} << 52) || op->params.beta[c] <= -(int64_t{1} << 52))
        throw Error("model file " + file_.path() + ": LayerNorm '" + name + "' parameters out of range");
    op->prepared = kernels::layernorm_prepare(op->params);
    op->in = in;
    return op;
  }

  // The LayerNorm's output onto stream point `point`, in buffer `out`; returns the point.
  StreamPoint write_to_stream(engine::LayerNormOp* op, const Meta& q, int point, int out) const {
    const StreamPoint sp = stream_point(q, point);
    op->to_stream = true;
    op->qmin = sp.qmin;
    op->qmax = sp.qmax;
    op->out = out;
    return sp;
  }

  // Average pooling of rows prefix..tokens-1 of each image's `tokens` rows
  // in buffer `in`: their rounded mean (int16), or with sum_out their sum (int32).
  std::unique_ptr<engine::PoolOp> make_pool(int in, int tokens, int prefix, bool sum_out) {
    const int d = info_.embed_dim;
    auto pool = std::make_unique<engine::PoolOp>();
    pool->tokens = tokens;
    pool->prefix = prefix;
    pool->dim = d;
    pool->sum_out = sum_out;
    pool->in = in;
    pool->out = g_.add_buffer("pooled", (sum_out ? sizeof(int32_t) : sizeof(int16_t)) * d);
    if (!sum_out) pool->sums = g_.add_buffer("pool_sums", 0, sizeof(int32_t) * d);
    return pool;
  }

  // The patch embedding into `stream`, quantized as stream point `point`.
  void add_patch_embed(const Meta& q, int stream, int point) {
    const int d = info_.embed_dim, p = info_.patch_size;
    auto op = std::make_unique<engine::PatchEmbedOp>();
    op->image_size = info_.image_size;
    op->patch = p;
    op->tokens = tokens_;
    op->pack_weights(isa_, file_.tensor("patch.weight", DType::kS8, {d, 3 * p * p}).as<int8_t>(), d);
    dyadic("patch", ".", d, &op->linear.mult, &op->linear.shift);
    op->prefix = prefix_;
    op->pos_bias = file_.tensor("patch.pos_bias", DType::kS32, {tokens_ - prefix_, d}).as<int32_t>();
    if (class_token_) op->prefix_rows.push_back(file_.tensor("cls", DType::kS16, {d}).as<int16_t>());
    if (distilled_) op->prefix_rows.push_back(file_.tensor("dist", DType::kS16, {d}).as<int16_t>());
    if (reg_tokens_ > 0) {
      const auto* reg = file_.tensor("reg", DType::kS16, {reg_tokens_, d}).as<int16_t>();
      for (int r = 0; r < reg_tokens_; ++r) op->prefix_rows.push_back(reg + static_cast<size_t>(r) * d);
    }
    const StreamPoint sp = stream_point(q, point);
    op->zp_out = sp.zp;
    op->qmin = sp.qmin;
    op->qmax = sp.qmax;
    op->im2col = g_.add_buffer("im2col", static_cast<size_t>(tokens_) * 3 * p * p);
    op->stream = stream;
    add(std::move(op), "patch_embed", "patch embedding");
  }

  std::unique_ptr<engine::LinearOp> make_linear(const std::string& name, int n, int k, int in, int out,
                                                int rows_per_image, int out_ld) const {
    auto op = std::make_unique<engine::LinearOp>();
    op->rows_per_image = rows_per_image;
    op->out_ld = out_ld;
    pack(op->linear, name, n, k);
    op->in = in;
    op->out = out;
    return op;
  }

  void make_residual(engine::LinearOp& op, const Meta& q, const std::string& name, int point_in) const {
    const StreamPoint in = stream_point(q, point_in), out = stream_point(q, point_in + 1);
    const int n = op.linear.n;
    dyadic(name + ".skip", "_", n, &op.skip_mult, &op.skip_shift);
    op.zp_in = in.zp;
    op.zp_out = out.zp;
    op.qmin = out.qmin;
    op.qmax = out.qmax;
    kernels::ResidualChannels fast;
    if (kernels::residual16_channels(n, op.residual_params(0), &fast)) op.residual16 = std::move(fast);
  }

  void add_block(const Meta& q, int i) {
    const int d = info_.embed_dim, h = info_.mlp_hidden;
    const Meta bm = q.at("blocks").at(static_cast<size_t>(i));
    auto b = [i](const std::string& w) { return vit::block(i, w); };
    // Only the class token leaves the last block (the final norm and the
    // head read nothing else): past its attention, which needs the keys and
    // values of every token, the last block computes the class token's rows
    // alone, in rows of their own (one per image) that the residual adds
    // put back into the stream, token rows apart. (A distilled DeiT's head
    // reads two rows per image: its last block runs whole.)
    const bool last = i + 1 == info_.depth && !avg_pool_ && !distilled_;
    const int rows = last ? 1 : tokens_;
    const int stream_ld = last ? tokens_ * d : d;

    auto ln1 = make_layernorm(q, bm.at("ln1"), b("ln1"), 2 * i, tokens_, stream_);
    ln1->out = act_;
    add(std::move(ln1), b("ln1"), "layernorm");

    auto qkv = make_linear(b("qkv"), 3 * d, d, act_, qkv_, tokens_, 3 * d);
    qkv->zero_point = file_.tensor(b("qkv.zero_point"), DType::kU8, {3 * d}).as<uint8_t>();
    check_bias(b("qkv"), 3 * d, qkv->linear.bias);
    qkv->requant = requant(b("qkv"), 3 * d, qkv->linear.bias, qkv->linear.mult, qkv->linear.shift);
    add(std::move(qkv), b("qkv"), "linear + requantize");

    const Meta am = bm.at("attn");
    auto attn = std::make_unique<engine::AttentionOp>();
    attn->tokens = tokens_;
    attn->query_rows = rows;
    attn->dim = d;
    attn->heads = info_.num_heads;
    attn->attention_bits = info_.attention_bits;
    attn->lis_normalize = q.contains("lis_normalize") && q.at("lis_normalize").integer(0, 1) == 1;
    attn->zq = am.at("zq").i32(0, 255);
    attn->zv = am.at("zv").i32(-128, 127);
    const int32_t to_exp_mult = am.at("to_exp_mult").i32(0, INT32_MAX);
    const int32_t to_exp_shift = am.at("to_exp_shift").i32(0, 62);
    const kernels::SoftmaxExp se = kernels::softmax_exp(to_exp_mult, to_exp_shift);
    if (!se.ok)
      throw Error("model file " + file_.path() + ": metadata 'quant.blocks[" + std::to_string(i) +
                  "].attn' to_exp_mult * 2^-to_exp_shift (" + std::to_string(to_exp_mult) + " * 2^-" +
                  std::to_string(to_exp_shift) + ") makes one attention logit unit worth more than 2^15 steps of the softmax's exponent");
    attn->exp_mult = se.mult;
    attn->exp_shift = se.shift;
    const int32_t *out_mult = nullptr, *out_shift = nullptr;
    dyadic(b("attn.out"), "_", d, &out_mult, &out_shift);
    attn->out_requant = requant(b("attn.out"), d, nullptr, out_mult, out_shift);  // no bias
    attn->out_zp = file_.tensor(b("attn.out_zero_point"), DType::kU8, {d}).as<uint8_t>();
    attn->qkv = qkv_;
    attn->out = act_;
    attn->scratch = attn_scratch_;
    add(std::move(attn), b("attn"), "attention");

    auto proj = make_linear(b("proj"), d, d, act_, stream_, rows, stream_ld);
    make_residual(*proj, q, b("proj"), 2 * i);
    add(std::move(proj), b("proj"), "linear + residual add");

    auto ln2 = make_layernorm(q, bm.at("ln2"), b("ln2"), 2 * i + 1, rows, stream_);
    ln2->out = act_;
    add(std::move(ln2), b("ln2"), "layernorm");

    auto fc1 = make_linear(b("fc1"), h, d, act_, hidden_, rows, h);
    fc1->zero_point = file_.tensor(b("fc1.zero_point"), DType::kU8, {h}).as<uint8_t>();
    if (!gelu_spline_) {
      kernels::GeluSpline spline;
      if (!kernels::gelu_spline(file_.tensor("gelu_table", DType::kS16, {kernels::kGeluTableSize}).as<int16_t>(), &spline))
        throw Error("model file " + file_.path() +
                    ": tensor 'gelu_table' is not a GELU-like activation (its spline coefficients at x = -128 k leave "
                    "|c0| < 2^11, |c1| <= 127)");
      gelu_spline_ = std::make_shared<const kernels::GeluSpline>(spline);
    }
    fc1->gelu_spline = gelu_spline_;
    const int32_t *gelu_mult = nullptr, *gelu_shift = nullptr;
    dyadic(b("gelu"), ".", h, &gelu_mult, &gelu_shift);
    check_bias(b("fc1"), h, fc1->linear.bias);
    fc1->gelu = kernels::gelu_channels(h, fc1->linear.bias, fc1->linear.mult, fc1->linear.shift, gelu_mult, gelu_shift, fc1->zero_point);
    add(std::move(fc1), b("fc1"), "linear + GELU");

    auto fc2 = make_linear(b("fc2"), d, h, hidden_, stream_, rows, stream_ld);
    make_residual(*fc2, q, b("fc2"), 2 * i + 1);
    add(std::move(fc2), b("fc2"), "linear + residual add");
  }

  const format::Reader& file_;
  kernels::Isa isa_;
  ModelInfo& info_;
  engine::Graph& g_;
  Meta meta_;
  int tokens_ = 0, prefix_ = 1;  // prefix: class, distillation and register token rows
  bool class_token_ = true, distilled_ = false, avg_pool_ = false, fc_norm_ = true;
  int reg_tokens_ = 0;
  bool pre_norm_ = false;        // norm_pre between the embedding and block 0
  int stream_ = -1, act_ = -1, qkv_ = -1, hidden_ = -1, attn_scratch_ = -1;
  std::shared_ptr<const kernels::GeluSpline> gelu_spline_;
};

void build_vit(const format::Reader& file, kernels::Isa isa, ModelInfo* info, engine::Graph* graph) {
  Builder(file, isa, info, graph).build();
}

}  // namespace

GraphBuilder find_builder(const std::string& family) {
  if (family == vit::kFamily) return &build_vit;
  return nullptr;
}

}  // namespace vitint::models
