#include "engine/src/ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numeric>

#include "vitint/kernels/gemm.h"
#include "vitint/kernels/quant_dispatch.h"

namespace vitint::engine {

namespace k = vitint::kernels;

namespace {

struct RowRange {
  int begin, end;
  int size() const { return end - begin; }
};

// How many blocks to cut `rows` rows into: one per thread, but blocks of at
// least 16 rows (smaller ones cost more in B-panel passes than they gain).
int row_parts(int rows, int threads) { return std::max(1, std::min(threads, rows / 16)); }

// Block `part` of `parts`: inner boundaries on multiples of 16 rows, the
// AMX tile height, so only the last block has a partial tile.
RowRange split_rows(int rows, int parts, int part) {
  auto edge = [&](int p) {
    if (p >= parts) return rows;
    const auto e = static_cast<int>(static_cast<int64_t>(rows) * p / parts);
    return std::min(rows, (e + 8) / 16 * 16);
  };
  return {edge(part), edge(part + 1)};
}

// Column blocks of a GEMM start on a multiple of this. Every path packs B
// as a sequence of column panels (gemm_internal.h: 16 columns for AVX2, 64
// for AVX-512, 16-column tiles for AMX, plain rows of B for the reference),
// so from a panel boundary j on, the packed bytes are a packed B of their
// own, packed_b_bytes(isa, j, k) bytes in. AMX computes tile pairs: 32.
int column_unit(k::Isa isa) {
  switch (isa) {
    case k::Isa::kAvx512Vnni:
      return 64;
    case k::Isa::kAmx:
      return 32;
    default:
      return 16;
  }
}

// Columns of block `part` of `parts` (whole column units, the last block
// ends at n).
RowRange split_cols(int n, int unit, int parts, int part) {
  const int units = (n + unit - 1) / unit;
  auto edge = [&](int p) { return std::min(n, units * p / parts * unit); };
  return {edge(part), part + 1 == parts ? n : edge(part + 1)};
}

// A GEMM of m x n cut into row_parts x col_parts blocks, one per thread.
struct GemmSplit {
  int row_parts = 1, col_parts = 1;
  int tasks() const { return row_parts * col_parts; }
};

// The grid (row_parts * col_parts = threads) whose largest block, in 16-row
// tiles times column units, is smallest; columns win ties: each thread then
// streams only its share of the weights, and 197 rows (13 tiles) do not
// halve evenly while the ViT widths do.
GemmSplit split_gemm(int m, int n, int unit, int threads) {
  const int units = (n + unit - 1) / unit;
  GemmSplit best;
  int64_t best_cost = -1;
  for (int cp = std::min(threads, units); cp >= 1; --cp) {
    if (threads % cp != 0) continue;
    const int rp = row_parts(m, threads / cp);
    int tiles = 0;
    for (int p = 0; p < rp; ++p) tiles = std::max(tiles, (split_rows(m, rp, p).size() + 15) / 16);
    const int64_t cost = int64_t{tiles} * ((units + cp - 1) / cp);
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = {rp, cp};
    }
  }
  return best;
}

}  // namespace

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

void PackedLinear::gemm_cols(k::Isa isa, int m, int col_begin, int col_end, const uint8_t* a, int lda,
                             int32_t* acc, int ldc) const {
  const uint8_t* b = packed.data() + k::packed_b_bytes(isa, col_begin, k);
  k::gemm_u8s8s32(isa, m, col_end - col_begin, k, a, lda, b, acc + col_begin, ldc);
}

void PatchEmbedOp::run(ExecContext& ctx) const {
  // Locals, not members, inside the task: the byte stores of im2col may
  // alias anything, members would be reloaded every iteration.
  const int size = image_size, p = patch, d = dim, t_count = tokens;
  const int grid = size / p;
  const int kdim = 3 * p * p;
  const int rows = t_count - 1;
  // im2col by (image, block of patches); then the GEMM and the epilogue by
  // (image, block of the grid split_gemm picks), like a linear layer. The
  // im2col and acc buffers hold every image.
  const int parts = row_parts(rows, ctx.threads());
  ctx.parallel(ctx.batch * parts, [&, size, p, t_count, grid, kdim, rows, parts](int task, int) {
    const int b = task / parts;
    const RowRange r = split_rows(rows, parts, task % parts);
    const uint8_t* img = ctx.images + static_cast<size_t>(b) * size * size * 3;
    uint8_t* cols = ctx.buf<uint8_t>(im2col) + static_cast<size_t>(b) * t_count * kdim;
    for (int t = r.begin; t < r.end; ++t) {
      const int py = t / grid, px = t % grid;
      uint8_t* row = cols + static_cast<size_t>(t) * kdim;
      for (int c = 0; c < 3; ++c)
        for (int ky = 0; ky < p; ++ky) {
          const uint8_t* src = img + (static_cast<size_t>(py * p + ky) * size + px * p) * 3 + c;
          uint8_t* dst = row + (c * p + ky) * p;
          for (int kx = 0; kx < p; ++kx) dst[kx] = src[kx * 3];
        }
    }
  });
  const int unit = column_unit(ctx.isa);
  const GemmSplit split = split_gemm(rows, d, unit, ctx.threads());
  ctx.parallel(ctx.batch * split.tasks(), [&, d, t_count, kdim, rows](int task, int) {
    const int b = task / split.tasks();
    const int part = task % split.tasks();
    const RowRange r = split_rows(rows, split.row_parts, part / split.col_parts);
    const RowRange c = split_cols(d, unit, split.col_parts, part % split.col_parts);
    if (r.size() <= 0 || c.size() <= 0) return;
    const uint8_t* cols = ctx.buf<uint8_t>(im2col) + static_cast<size_t>(b) * t_count * kdim;
    int32_t* acc_rows = ctx.buf<int32_t>(acc) + (static_cast<size_t>(b) * rows + r.begin) * d;
    linear.gemm_cols(ctx.isa, r.size(), c.begin, c.end, cols + static_cast<size_t>(r.begin) * kdim, kdim, acc_rows, d);
    int16_t* s = ctx.buf<int16_t>(stream) + static_cast<size_t>(b) * t_count * d;
    if (r.begin == 0 && c.begin == 0) std::memcpy(s, cls_row, sizeof(int16_t) * static_cast<size_t>(d));
    int16_t* s_rows = s + static_cast<size_t>(1 + r.begin) * d;
    const int32_t* bias = pos_bias + static_cast<size_t>(r.begin) * d;
    if (c.size() == d) {
      // bias_rows = the block's rows: one bias row per token (a 1-row block
      // reads row 0 of the offset pointer, which is the same row).
      const k::ResidualParams rp{bias, r.size(), linear.mult, linear.shift, nullptr, nullptr, 0, zp_out, qmin, qmax};
      k::residual_add(ctx.isa, r.size(), d, acc_rows, d, rp, s_rows, d);
      return;
    }
    // A column block: bias rows are d apart, not the block's width apart, so
    // one row per call.
    for (int i = 0; i < r.size(); ++i) {
      const size_t at = static_cast<size_t>(i) * d + c.begin;
      const k::ResidualParams rp{bias + at, 1, linear.mult + c.begin, linear.shift + c.begin, nullptr, nullptr,
                                 0, zp_out, qmin, qmax};
      k::residual_add(ctx.isa, 1, c.size(), acc_rows + at, d, rp, s_rows + at, d);
    }
  });
}

void LayerNormOp::run(ExecContext& ctx) const {
  const int16_t* x = ctx.buf<int16_t>(in);
  uint8_t* y = ctx.buf<uint8_t>(out);
  // All tokens, or the class token of every image.
  const int rows = rows_per_image == tokens ? ctx.batch * tokens : ctx.batch;
  const int ld_in = rows_per_image == tokens ? dim : tokens * dim;
  const int parts = row_parts(rows, ctx.threads());
  ctx.parallel(parts, [&](int part, int) {
    const RowRange r = split_rows(rows, parts, part);
    k::layernorm(ctx.isa, r.size(), x + static_cast<size_t>(r.begin) * ld_in, ld_in, params,
                 y + static_cast<size_t>(r.begin) * dim, dim);
  });
}

void LinearOp::run(ExecContext& ctx) const {
  const int m = ctx.batch * rows_per_image;
  const int n = linear.n;
  const int unit = column_unit(ctx.isa);
  const GemmSplit split = split_gemm(m, n, unit, ctx.threads());
  // GEMM and epilogue per block (the epilogue reads the block's
  // accumulators while they are still in cache). Every block of a call has
  // the same A rows per column block, so the kernels' per-thread A buffers
  // see the same sizes whichever thread takes which block.
  ctx.parallel(split.tasks(), [&](int task, int) {
    const RowRange r = split_rows(m, split.row_parts, task / split.col_parts);
    const RowRange c = split_cols(n, unit, split.col_parts, task % split.col_parts);
    if (r.size() <= 0 || c.size() <= 0) return;
    const size_t at = static_cast<size_t>(r.begin) * n + c.begin;
    int32_t* accum = ctx.buf<int32_t>(acc) + static_cast<size_t>(r.begin) * n;
    linear.gemm_cols(ctx.isa, r.size(), c.begin, c.end, ctx.buf<uint8_t>(in) + static_cast<size_t>(r.begin) * linear.k,
                     linear.k, accum, n);
    const int j = c.begin;
    if (skip_mult) {
      const k::ResidualParams rp{linear.bias + j, 1, linear.mult + j, linear.shift + j, skip_mult + j, skip_shift + j,
                                 zp_in, zp_out, qmin, qmax};
      k::residual_add(ctx.isa, r.size(), c.size(), accum + j, n, rp, ctx.buf<int16_t>(out) + at, n);
    } else if (gelu_table) {
      const k::GeluU8Params gp{linear.bias + j, linear.mult + j, linear.shift + j, gelu_table,
                               gelu_mult + j,   gelu_shift + j,  zero_point + j};
      k::gelu_u8(ctx.isa, r.size(), c.size(), accum + j, n, gp, ctx.buf<uint8_t>(out) + at, n);
    } else {
      const k::RequantU8Params rq{linear.bias + j, linear.mult + j, linear.shift + j, zero_point + j,
                                  table};
      k::requant_u8(ctx.isa, r.size(), c.size(), accum + j, n, rq, ctx.buf<uint8_t>(out) + at, n);
    }
  });
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

namespace {

// K and V of one head to int8 (uint8 ^ 0x80) and the column sums of K. Plain
// functions: sizes in a closure object would be reloaded after every byte
// store (which may alias them), and the loops would not vectorize.
void convert_kv(const uint8_t* k_src, int ld, int dim, int tokens, int hd, int8_t* k_dst, int8_t* v_dst,
                int32_t* colsum) {
  for (int j = 0; j < tokens; ++j) {
    const uint8_t* kr = k_src + static_cast<size_t>(j) * ld;
    const uint8_t* vr = kr + dim;
    int8_t* kd = k_dst + static_cast<size_t>(j) * hd;
    int8_t* vd = v_dst + static_cast<size_t>(j) * hd;
    int32_t sum = 0;
    for (int d = 0; d < hd; ++d) {
      kd[d] = static_cast<int8_t>(kr[d] ^ 0x80);
      vd[d] = static_cast<int8_t>(vr[d] ^ 0x80);
      sum += kd[d];
    }
    colsum[j] = sum;
  }
}

// The int8 zero point of V times each row's probability sum; with
// `normalize`, each row is also rescaled by 2^14 / rowsum (the Log-Int-Softmax
// weights 2^(14 - code) of a row do not sum to exactly 2^14).
void subtract_zv(int32_t* out_acc, int rows, int hd, int32_t zv, const int32_t* rowsum, bool normalize) {
  for (int i = 0; i < rows; ++i) {
    const int32_t corr = zv * rowsum[i];
    int32_t* row = out_acc + static_cast<size_t>(i) * hd;
    if (!normalize) {
      for (int d = 0; d < hd; ++d) row[d] -= corr;
      continue;
    }
    // rowsum >= 2^14 (the row maximum has code 0), so recip <= 2^16.
    const int64_t recip = ((int64_t{1} << 30) + rowsum[i] / 2) / rowsum[i];
    for (int d = 0; d < hd; ++d)
      row[d] = static_cast<int32_t>(((int64_t{row[d]} - corr) * recip + (int64_t{1} << 15)) >> 16);
  }
}

}  // namespace

size_t AttentionOp::scratch_bytes(k::Isa isa, int tokens, int head_dim) {
  return carve(isa, tokens, head_dim, nullptr, nullptr);
}

void AttentionOp::run(ExecContext& ctx) const {
  const int t_count = tokens, d_model = dim, h_count = heads;
  const int hd = d_model / h_count;
  const int ld = 3 * d_model;
  const int32_t z_v = zv;
  const size_t stride = scratch_bytes(ctx.isa, t_count, hd);
  const k::SoftmaxParams sp0{0, t_count, nullptr, zq, to_exp_mult, to_exp_shift};
  // Tasks: (image, head, block of query rows). Query blocks only when the
  // (image, head) pairs do not divide evenly among the threads (DeiT-Tiny has
  // 3 heads); each block converts and packs its head's K and V again.
  const int units = ctx.batch * h_count;
  const int threads = ctx.threads();
  const int blocks = std::max(1, std::min(threads / std::gcd(units, threads), t_count / 16));
  ctx.parallel(units * blocks, [&, t_count, d_model, h_count, hd, ld, z_v, stride, blocks](int task, int thread) {
    const int b = task / blocks / h_count;
    const int h = task / blocks % h_count;
    const RowRange r = split_rows(t_count, blocks, task % blocks);
    if (r.size() <= 0) return;
    AttentionScratch s{};
    carve(ctx.isa, t_count, hd, ctx.buf<uint8_t>(scratch) + static_cast<size_t>(thread) * stride, &s);
    const uint8_t* qkv_img = ctx.buf<uint8_t>(qkv) + static_cast<size_t>(b) * t_count * ld;
    uint8_t* out_img = ctx.buf<uint8_t>(out) + static_cast<size_t>(b) * t_count * d_model;
    convert_kv(qkv_img + d_model + h * hd, ld, d_model, t_count, hd, s.k_s8, s.v_s8, s.colsum_k);
    const int rows = r.size();
    k::pack_b_s8(ctx.isa, t_count, hd, s.k_s8, hd, s.packed_k);
    k::gemm_u8s8s32(ctx.isa, rows, t_count, hd, qkv_img + static_cast<size_t>(r.begin) * ld + h * hd, ld, s.packed_k,
                    s.scores, t_count);
    k::SoftmaxParams sp = sp0;
    sp.rows = rows;
    sp.colsum_k = s.colsum_k;
    if (attention_bits == 8) {
      k::softmax_u8(ctx.isa, s.scores, t_count, sp, s.probs, t_count, s.rowsum);
      k::pack_b_s8_transposed(ctx.isa, hd, t_count, s.v_s8, hd, s.packed_v);
      k::gemm_u8s8s32(ctx.isa, rows, hd, t_count, s.probs, t_count, s.packed_v, s.out_acc, hd);
    } else {
      auto* w = reinterpret_cast<int16_t*>(s.probs);
      k::softmax_lis(ctx.isa, s.scores, t_count, sp, w, t_count, s.rowsum);
      k::pack_b16_s8_transposed(ctx.isa, hd, t_count, s.v_s8, hd, s.packed_v);
      k::gemm_s16s8s32(ctx.isa, rows, hd, t_count, w, t_count, s.packed_v, s.out_acc, hd);
    }
    subtract_zv(s.out_acc, rows, hd, z_v, s.rowsum, attention_bits == 4 && lis_normalize);
    const k::RequantU8Params rq{out_bias.data(), out_mult + h * hd, out_shift + h * hd, out_zp + h * hd, nullptr};
    k::requant_u8(ctx.isa, rows, hd, s.out_acc, hd, rq, out_img + static_cast<size_t>(r.begin) * d_model + h * hd,
                  d_model);
  });
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
