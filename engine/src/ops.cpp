#include "engine/src/ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "vitint/kernels/gemm.h"

namespace vitint::engine {

namespace k = vitint::kernels;

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  const size_t rounded = (bytes + 63) / 64 * 64;
  data_ = static_cast<uint8_t*>(std::aligned_alloc(64, rounded));
  if (!data_) throw std::bad_alloc();
  std::memset(data_, 0, rounded);
}
AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}
AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}
AlignedBuffer::~AlignedBuffer() { std::free(data_); }

void PackedLinear::pack(k::Isa isa, const int8_t* weight, int n_out, int k_in) {
  n = n_out;
  k = k_in;
  packed = AlignedBuffer(k::packed_b_bytes(isa, n, k));
  k::pack_b_s8(isa, n, k, weight, k, packed.data());
}

void PackedLinear::gemm(k::Isa isa, int m, const uint8_t* a, int lda, int32_t* acc) const {
  k::gemm_u8s8s32(isa, m, n, k, a, lda, packed.data(), acc, n);
}

void PatchEmbedOp::run(ExecContext& ctx) const {
  const int grid = image_size / patch;
  const int kdim = 3 * patch * patch;
  auto* cols = ctx.buf<uint8_t>(im2col);
  auto* accum = ctx.buf<int32_t>(acc);
  for (int b = 0; b < ctx.batch; ++b) {
    const uint8_t* img = ctx.images + static_cast<size_t>(b) * image_size * image_size * 3;
    for (int py = 0; py < grid; ++py)
      for (int px = 0; px < grid; ++px) {
        uint8_t* row = cols + static_cast<size_t>(py * grid + px) * kdim;
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < patch; ++ky) {
            const uint8_t* src = img + (static_cast<size_t>(py * patch + ky) * image_size + px * patch) * 3 + c;
            uint8_t* dst = row + (c * patch + ky) * patch;
            for (int kx = 0; kx < patch; ++kx) dst[kx] = src[kx * 3];
          }
      }
    linear.gemm(ctx.isa, tokens - 1, cols, kdim, accum);
    int16_t* s = ctx.buf<int16_t>(stream) + static_cast<size_t>(b) * tokens * dim;
    std::memcpy(s, cls_row, sizeof(int16_t) * static_cast<size_t>(dim));
    k::ResidualParams rp{pos_bias, tokens - 1, linear.mult, linear.shift, nullptr, nullptr, 0, zp_out, qmin, qmax};
    k::residual_add_ref(tokens - 1, dim, accum, dim, rp, s + dim, dim);
  }
}

void LayerNormOp::run(ExecContext& ctx) const {
  const int16_t* x = ctx.buf<int16_t>(in);
  uint8_t* y = ctx.buf<uint8_t>(out);
  if (rows_per_image == tokens) {
    k::layernorm_ref(ctx.batch * tokens, x, dim, params, y, dim);
  } else {  // class token of every image
    k::layernorm_ref(ctx.batch, x, tokens * dim, params, y, dim);
  }
}

void LinearOp::run(ExecContext& ctx) const {
  const int m = ctx.batch * rows_per_image;
  auto* accum = ctx.buf<int32_t>(acc);
  linear.gemm(ctx.isa, m, ctx.buf<uint8_t>(in), linear.k, accum);
  if (skip_mult) {
    k::ResidualParams rp{linear.bias, 1, linear.mult, linear.shift, skip_mult, skip_shift, zp_in, zp_out, qmin, qmax};
    k::residual_add_ref(m, linear.n, accum, linear.n, rp, ctx.buf<int16_t>(out), linear.n);
  } else {
    k::RequantU8Params rq{linear.bias, linear.mult, linear.shift, zero_point, table};
    k::requant_u8_ref(m, linear.n, accum, linear.n, rq, ctx.buf<uint8_t>(out), linear.n);
  }
}

namespace {
struct AttentionScratch {
  int8_t* k_s8;
  int8_t* v_s8;
  uint8_t* packed_k;
  uint8_t* packed_v;
  int32_t* scores;
  int32_t* colsum_k;
  uint8_t* probs;  // uint8 probabilities or int16 LIS weights
  int32_t* rowsum;
  int32_t* out_acc;
};
size_t align64(size_t v) { return (v + 63) / 64 * 64; }

// One layout used by both scratch_bytes() and run().
size_t carve(k::Isa isa, int tokens, int head_dim, uint8_t* base, AttentionScratch* s) {
  const auto t = static_cast<size_t>(tokens);
  const auto d = static_cast<size_t>(head_dim);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    uint8_t* p = base ? base + off : nullptr;
    off += align64(bytes);
    return p;
  };
  uint8_t* k_s8 = take(t * d);
  uint8_t* v_s8 = take(t * d);
  uint8_t* packed_k = take(k::packed_b_bytes(isa, tokens, head_dim));
  uint8_t* packed_v = take(std::max(k::packed_b_bytes(isa, head_dim, tokens), k::packed_b16_bytes(isa, head_dim, tokens)));
  uint8_t* scores = take(t * t * 4);
  uint8_t* colsum = take(t * 4);
  uint8_t* probs = take(t * t * 2);
  uint8_t* rowsum = take(t * 4);
  uint8_t* out_acc = take(t * d * 4);
  if (s) {
    *s = {reinterpret_cast<int8_t*>(k_s8), reinterpret_cast<int8_t*>(v_s8), packed_k, packed_v,
          reinterpret_cast<int32_t*>(scores), reinterpret_cast<int32_t*>(colsum), probs,
          reinterpret_cast<int32_t*>(rowsum), reinterpret_cast<int32_t*>(out_acc)};
  }
  return off;
}
}  // namespace

size_t AttentionOp::scratch_bytes(k::Isa isa, int tokens, int head_dim) {
  return carve(isa, tokens, head_dim, nullptr, nullptr);
}

void AttentionOp::run(ExecContext& ctx) const {
  const int hd = dim / heads;
  const int ld = 3 * dim;
  AttentionScratch s{};
  carve(ctx.isa, tokens, hd, ctx.buf<uint8_t>(scratch), &s);
  const k::RequantU8Params rq{out_bias.data(), out_mult.data(), out_shift.data(), out_zp.data(), nullptr};
  for (int b = 0; b < ctx.batch; ++b) {
    const uint8_t* qkv_img = ctx.buf<uint8_t>(qkv) + static_cast<size_t>(b) * tokens * ld;
    uint8_t* out_img = ctx.buf<uint8_t>(out) + static_cast<size_t>(b) * tokens * dim;
    for (int h = 0; h < heads; ++h) {
      for (int j = 0; j < tokens; ++j) {
        const uint8_t* kr = qkv_img + static_cast<size_t>(j) * ld + dim + h * hd;
        const uint8_t* vr = kr + dim;
        int8_t* kd = s.k_s8 + static_cast<size_t>(j) * hd;
        int8_t* vd = s.v_s8 + static_cast<size_t>(j) * hd;
        int32_t sum = 0;
        for (int d = 0; d < hd; ++d) {
          kd[d] = static_cast<int8_t>(kr[d] ^ 0x80);
          vd[d] = static_cast<int8_t>(vr[d] ^ 0x80);
          sum += kd[d];
        }
        s.colsum_k[j] = sum;
      }
      k::pack_b_s8(ctx.isa, tokens, hd, s.k_s8, hd, s.packed_k);
      k::gemm_u8s8s32(ctx.isa, tokens, tokens, hd, qkv_img + h * hd, ld, s.packed_k, s.scores, tokens);
      const k::SoftmaxParams sp{tokens, tokens, s.colsum_k, zq, to_exp_mult, to_exp_shift};
      if (attention_bits == 8) {
        k::softmax_u8_ref(s.scores, tokens, sp, s.probs, tokens, s.rowsum);
        k::pack_b_s8_transposed(ctx.isa, hd, tokens, s.v_s8, hd, s.packed_v);
        k::gemm_u8s8s32(ctx.isa, tokens, hd, tokens, s.probs, tokens, s.packed_v, s.out_acc, hd);
      } else {
        auto* w = reinterpret_cast<int16_t*>(s.probs);
        k::softmax_lis_ref(s.scores, tokens, sp, w, tokens, s.rowsum);
        k::pack_b16_s8_transposed(ctx.isa, hd, tokens, s.v_s8, hd, s.packed_v);
        k::gemm_s16s8s32(ctx.isa, tokens, hd, tokens, w, tokens, s.packed_v, s.out_acc, hd);
      }
      for (int i = 0; i < tokens; ++i) {
        const int32_t corr = zv * s.rowsum[i];
        int32_t* row = s.out_acc + static_cast<size_t>(i) * hd;
        for (int d = 0; d < hd; ++d) row[d] -= corr;
      }
      k::requant_u8_ref(tokens, hd, s.out_acc, hd, rq, out_img + h * hd, dim);
    }
  }
}

void HeadOp::run(ExecContext& ctx) const {
  auto* accum = ctx.buf<int32_t>(acc);
  linear.gemm(ctx.isa, ctx.batch, ctx.buf<uint8_t>(in), linear.k, accum);
  for (int b = 0; b < ctx.batch; ++b)
    for (int c = 0; c < linear.n; ++c) {
      const size_t i = static_cast<size_t>(b) * linear.n + c;
      ctx.logits[i] = static_cast<float>(accum[i] + linear.bias[c]) * scale[c];
    }
}

}  // namespace vitint::engine
