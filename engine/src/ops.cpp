#include "engine/src/ops.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <numeric>

#include <unistd.h>

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
// as a sequence of column panels (gemm_internal.h: 16 columns for AVX2 and
// AVX-VNNI, 64 for AVX-512, 16-column tiles for AMX, plain rows of B for the
// reference),
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

// Rows of a GEMM are split in multiples of this: AMX computes 32-row
// blocks (tile pairs); for the vector paths 16 is as good as any.
int row_quantum(k::Isa isa) { return isa == k::Isa::kAmx ? 32 : 16; }

// The share of thread `part` of `parts` in an m x n GEMM and its epilogue:
// a band of whole row quanta over all columns, equally high for every
// thread, then a column block of the rows left below the bands. For 197
// rows and two threads on AMX: rows 0-95 and 96-191, then column halves of
// rows 192-196. Cutting 96 / 101 rows gave one thread 7 row tiles to the
// other's 6, and a lone tile row costs AMX nearly what a pair does (40%
// more time on that thread); cutting all rows by columns balances too but
// makes every thread read the rows the other one just wrote (LayerNorm and
// the linear layers before split by rows): measured 10% slower than bands.
//
// Layers with large weights (n x k bytes >= half of a core's L2) split all
// rows by columns instead: with row bands every thread streams all of the
// weights from L3 (they do not stay in L2 beside the activations); by
// columns each streams its share. On Sapphire Rapids (2 MiB L2), DeiT-B on 2
// threads (qkv, fc1, fc2 by columns, proj 0.6 MB by bands): 16.1-16.9 ->
// 14.5-14.7 ms; DeiT-S's 0.6 MB layers stay in bands (by columns: 4.4 ->
// 4.6-4.7 ms). Where the OS does not report the L2 size, 2 MiB is assumed.
int64_t column_split_weights() {
  static const int64_t bytes = [] {
    long l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return (l2 > 0 ? int64_t{l2} : int64_t{2} << 20) / 2;
  }();
  return bytes;
}

struct GemmShare {
  RowRange band;       // all columns
  RowRange rest_rows;  // the rows below every band
  RowRange rest_cols;  // this thread's columns of them
};

GemmShare gemm_share(int m, int n, int k, int row_q, int col_unit, int parts, int part) {
  const bool by_columns = int64_t{n} * k >= column_split_weights();
  const int band = parts == 1 ? m : by_columns ? 0 : m / row_q / parts * row_q;
  return {{part * band, (part + 1) * band}, {parts * band, m}, split_cols(n, col_unit, parts, part)};
}

// Calls block(rows, cols) for the nonempty blocks of a share.
template <class Block>
void for_each_block(const GemmShare& s, int n, Block&& block) {
  if (s.band.size() > 0) block(s.band, RowRange{0, n});
  if (s.rest_rows.size() > 0 && s.rest_cols.size() > 0) block(s.rest_rows, s.rest_cols);
}

// A fused GEMM's epilogue, given the position of the sub-GEMM (a thread's
// block) in the layer's output: fn(op, ctx, row, col, rows, cols, c, ldc)
// with row and col in the layer's output.
template <class OpT, void (*Fn)(const OpT&, const ExecContext&, int, int, int, int, const int32_t*, int)>
struct BlockEpilogue {
  const OpT* op;
  const ExecContext* ctx;
  int row0, col0;
  static void call(const void* self, int row, int col, int rows, int cols, const int32_t* c, int ldc) {
    const auto& e = *static_cast<const BlockEpilogue*>(self);
    Fn(*e.op, *e.ctx, e.row0 + row, e.col0 + col, rows, cols, c, ldc);
  }
  k::GemmEpilogue get() const { return {&BlockEpilogue::call, this}; }
};

}  // namespace

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  const size_t rounded = align64(bytes);
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

void PackedLinear::gemm_cols_fused(k::Isa isa, int m, int col_begin, int col_end, const uint8_t* a, int lda,
                                   const k::GemmEpilogue& epilogue) const {
  const uint8_t* b = packed.data() + k::packed_b_bytes(isa, col_begin, k);
  k::gemm_u8s8s32_fused(isa, m, col_end - col_begin, k, a, lda, b, epilogue);
}

void PatchEmbedOp::pack_weights(k::Isa isa, const int8_t* weight, int dim) {
  const int p = patch, kdim = 3 * p * p;
  std::vector<int8_t> w(static_cast<size_t>(dim) * kdim);
  for (int o = 0; o < dim; ++o) {
    const int8_t* src = weight + static_cast<size_t>(o) * kdim;  // [channel][row][column]
    int8_t* dst = w.data() + static_cast<size_t>(o) * kdim;       // [row][column][channel]
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < p; ++y)
        for (int x = 0; x < p; ++x) dst[(y * p + x) * 3 + c] = src[(c * p + y) * p + x];
  }
  linear.pack(isa, w.data(), dim, kdim);
}

void PatchEmbedOp::run(ExecContext& ctx) const {
  const int size = image_size, p = patch, d = linear.n, t_count = tokens;
  const int grid = size / p;
  const int kdim = 3 * p * p;
  const int rows = t_count - prefix;
  // im2col, then the GEMM and the epilogue, by (image, thread share of a
  // linear layer's split): a thread's im2col rows are its band, and the
  // last thread's also the rows below the bands (whose GEMM is split by
  // columns, so it needs a barrier). The im2col buffer holds every
  // image. A patch's row of pixels is 3 * p contiguous bytes in the image
  // and in the weights' k order (pack_weights).
  const int threads = ctx.threads();
  const int row_q = row_quantum(ctx.isa), unit = column_unit(ctx.isa);
  ctx.parallel(ctx.batch * threads, [&, size, p, t_count, grid, kdim, rows, threads, row_q, unit](int task, int) {
    const int b = task / threads;
    const int part = task % threads;
    const GemmShare share = gemm_share(rows, 1, kdim, row_q, unit, threads, part);
    const RowRange r{share.band.begin, part + 1 == threads ? rows : share.band.end};
    const uint8_t* img = ctx.images + static_cast<size_t>(b) * size * size * 3;
    uint8_t* cols = ctx.buf<uint8_t>(im2col) + static_cast<size_t>(b) * t_count * kdim;
    const size_t row_bytes = static_cast<size_t>(p) * 3;
    for (int t = r.begin; t < r.end; ++t) {
      const int py = t / grid, px = t % grid;
      for (int y = 0; y < p; ++y)
        std::memcpy(cols + static_cast<size_t>(t) * kdim + static_cast<size_t>(y) * row_bytes,
                    img + (static_cast<size_t>(py * p + y) * size + static_cast<size_t>(px) * p) * 3, row_bytes);
    }
  });
  ctx.parallel(ctx.batch * threads, [&, d, t_count, kdim, rows, threads, row_q, unit](int task, int) {
    const int b = task / threads;
    const uint8_t* cols = ctx.buf<uint8_t>(im2col) + static_cast<size_t>(b) * t_count * kdim;
    int16_t* s = ctx.buf<int16_t>(stream) + static_cast<size_t>(b) * t_count * d;
    if (task % threads == 0)
      for (int r = 0; r < prefix; ++r)
        std::memcpy(s + static_cast<size_t>(r) * d, prefix_rows[r], sizeof(int16_t) * static_cast<size_t>(d));
    const GemmShare share = gemm_share(rows, d, kdim, row_q, unit, threads, task % threads);
    for_each_block(share, d, [&](RowRange r, RowRange c) {
      const BlockEpilogue<PatchEmbedOp, &PatchEmbedOp::epilogue> ep{this, &ctx, b * rows + r.begin, c.begin};
      linear.gemm_cols_fused(ctx.isa, r.size(), c.begin, c.end, cols + static_cast<size_t>(r.begin) * kdim, kdim,
                             ep.get());
    });
  });
}

// Patch tokens (row = image * (tokens - prefix) + patch): the stream row after
// the image's class (and distillation) token, with the position embedding as a
// per-row bias.
void PatchEmbedOp::epilogue(const PatchEmbedOp& op, const ExecContext& ctx, int row, int col, int rows, int cols,
                            const int32_t* c, int ldc) {
  const int d = op.linear.n, per_image = op.tokens - op.prefix;
  int16_t* s = ctx.buf<int16_t>(op.stream);
  while (rows > 0) {
    // The block's rows of one image.
    const int b = row / per_image, t = row % per_image;
    const int n = std::min(rows, per_image - t);
    const k::ResidualParams rp{op.pos_bias + static_cast<size_t>(t) * d + col, d, op.linear.mult + col,
                               op.linear.shift + col, nullptr, nullptr, 0, op.zp_out, op.qmin, op.qmax};
    k::residual_add(ctx.isa, n, cols, c, ldc, rp, s + (static_cast<size_t>(b) * op.tokens + op.prefix + t) * d + col, d);
    row += n;
    rows -= n;
    c += static_cast<ptrdiff_t>(n) * ldc;
  }
}

void LayerNormOp::run(ExecContext& ctx) const {
  const int16_t* x = ctx.buf<int16_t>(in);
  // Output row i is row i % rows_per_image of image i / rows_per_image; the
  // input holds `tokens` rows per image. Each run of consecutive input rows
  // is one kernel call.
  const int per_image = rows_per_image, rows = ctx.batch * per_image;
  const int dim = params.channels;
  k::LayerNormParams p = params;
  p.prepared = &prepared;
  const int parts = row_parts(rows, ctx.threads());
  ctx.parallel(parts, [&](int part, int) {
    const RowRange r = split_rows(rows, parts, part);
    for (int i = r.begin; i < r.end;) {
      const int b = i / per_image, t = i % per_image;
      const int n = std::min(r.end - i, per_image - t);
      const int16_t* rows_in = x + (static_cast<size_t>(b) * tokens + first_row + t) * dim;
      const size_t at = static_cast<size_t>(i) * dim;
      if (to_stream) {
        k::layernorm_stream(ctx.isa, n, rows_in, dim, p, qmin, qmax, ctx.buf<int16_t>(out) + at, dim);
      } else {
        k::layernorm(ctx.isa, n, rows_in, dim, p, ctx.buf<uint8_t>(out) + at, dim);
      }
      i += n;
    }
  });
}

void LinearOp::run(ExecContext& ctx) const {
  const int m = ctx.batch * rows_per_image;
  const int n = linear.n;
  const int threads = ctx.threads();
  const int row_q = row_quantum(ctx.isa), unit = column_unit(ctx.isa);
  // The blocks of the threads have equal shapes, so the kernels' per-thread
  // A buffers do not depend on which thread runs which share.
  ctx.parallel(threads, [&, m, n, threads, row_q, unit](int part, int) {
    const GemmShare share = gemm_share(m, n, linear.k, row_q, unit, threads, part);
    for_each_block(share, n, [&](RowRange r, RowRange c) {
      const BlockEpilogue<LinearOp, &LinearOp::epilogue> ep{this, &ctx, r.begin, c.begin};
      linear.gemm_cols_fused(ctx.isa, r.size(), c.begin, c.end,
                             ctx.buf<uint8_t>(in) + static_cast<size_t>(r.begin) * linear.k, linear.k, ep.get());
    });
  });
}

k::ResidualParams LinearOp::residual_params(int j) const {
  return {linear.bias + j, 0, linear.mult + j, linear.shift + j, skip_mult + j, skip_shift + j, zp_in, zp_out, qmin, qmax};
}

void LinearOp::epilogue(const LinearOp& op, const ExecContext& ctx, int row, int col, int rows, int cols,
                        const int32_t* c, int ldc) {
  const int j = col;
  const size_t at = static_cast<size_t>(row) * op.out_ld + col;
  if (op.residual16) {
    k::residual_add16(ctx.isa, rows, cols, c, ldc, op.residual16->params().from(j), ctx.buf<int16_t>(op.out) + at,
                      op.out_ld);
  } else if (op.skip_mult) {
    k::residual_add(ctx.isa, rows, cols, c, ldc, op.residual_params(j), ctx.buf<int16_t>(op.out) + at, op.out_ld);
  } else if (op.gelu_spline) {
    k::gelu_u8(ctx.isa, rows, cols, c, ldc, op.gelu.params(op.zero_point, op.gelu_spline.get()).from(j),
               ctx.buf<uint8_t>(op.out) + at, op.out_ld);
  } else {
    k::requant_u8(ctx.isa, rows, cols, c, ldc, op.requant.params(op.zero_point).from(j), ctx.buf<uint8_t>(op.out) + at,
                  op.out_ld);
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

// Keys padded to whole 16-column tiles: q.k^T then writes whole tiles into
// score rows that start on 64-byte boundaries (DeiT head, AMX: 7.4 -> 3.7
// us; the unaligned rows of a 197-wide score matrix made the tile stores
// straddle cache lines). The padding rows of K hold whatever the scratch
// held: their scores are never read (the softmax reads the first `tokens`).
int padded_keys(int tokens) { return (tokens + 15) / 16 * 16; }
// Rows of the attention weights 64-byte aligned and at least the keys
// rounded up to 64 apart: attn@v's AMX GEMM then reads them in place (a
// DeiT head 3.7 -> 2.1 us) instead of copying them into tiles.
int weights_ld(int tokens) { return (tokens + 63) / 64 * 64; }

// One layout used by both scratch_bytes() and run().
size_t carve(k::Isa isa, int tokens, int head_dim, uint8_t* base, AttentionScratch* s) {
  const auto t = static_cast<size_t>(tokens);
  const auto tp = static_cast<size_t>(padded_keys(tokens));
  const auto d = static_cast<size_t>(head_dim);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    uint8_t* p = base ? base + off : nullptr;
    off += align64(bytes);
    return p;
  };
  uint8_t* k_s8 = take(tp * d);
  uint8_t* v_s8 = take(t * d);
  uint8_t* packed_k = take(k::packed_b_bytes(isa, static_cast<int>(tp), head_dim));
  uint8_t* packed_v = take(std::max(k::packed_b_bytes(isa, head_dim, tokens), k::packed_b16_bytes(isa, head_dim, tokens)));
  uint8_t* scores = take(t * tp * 4);
  uint8_t* colsum = take(t * 4);
  uint8_t* probs = take(t * static_cast<size_t>(weights_ld(tokens)) * 2);
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
  const int t_count = tokens, d_model = dim, h_count = heads;
  const int t_pad = padded_keys(t_count);
  const int w_ld = weights_ld(t_count);
  const int hd = d_model / h_count;
  const int ld = 3 * d_model;
  const int32_t z_v = zv;
  const size_t stride = scratch_bytes(ctx.isa, t_count, hd);
  const k::SoftmaxParams sp0{0, t_count, nullptr, zq, exp_mult, exp_shift};
  // Tasks: (image, head, block of query rows). Query blocks only when the
  // (image, head) pairs do not divide evenly among the threads (DeiT-Tiny has
  // 3 heads); each block converts and packs its head's K and V again.
  const int units = ctx.batch * h_count;
  const int threads = ctx.threads();
  const int q_rows = query_rows;
  const int blocks = std::max(1, std::min(threads / std::gcd(units, threads), q_rows / 16));
  // The pool runs task i on thread i % threads; item `work` of the
  // (image, head, block) order makes each thread's heads adjacent, so the
  // 64-byte head columns it writes share 128-byte line pairs (which the L2
  // prefetcher moves together) with its own heads, not the other thread's.
  const int tasks = units * blocks;
  const int per_thread = tasks % threads == 0 ? tasks / threads : 0;
  ctx.parallel(tasks, [&, t_count, t_pad, w_ld, q_rows, d_model, h_count, hd, ld, z_v, stride, blocks, threads, per_thread](int task, int thread) {
    const int work = per_thread ? task % threads * per_thread + task / threads : task;
    const int b = work / blocks / h_count;
    const int h = work / blocks % h_count;
    const RowRange r = split_rows(q_rows, blocks, work % blocks);
    if (r.size() <= 0) return;
    AttentionScratch s{};
    carve(ctx.isa, t_count, hd, ctx.buf<uint8_t>(scratch) + static_cast<size_t>(thread) * stride, &s);
    const uint8_t* qkv_img = ctx.buf<uint8_t>(qkv) + static_cast<size_t>(b) * t_count * ld;
    uint8_t* out_img = ctx.buf<uint8_t>(out) + static_cast<size_t>(b) * q_rows * d_model;
    const uint8_t* k_img = qkv_img + d_model + h * hd;
    k::attn_kv_s8(ctx.isa, t_count, hd, k_img, k_img + d_model, ld, s.k_s8, s.v_s8, s.colsum_k);
    const int rows = r.size();
    k::pack_b_s8(ctx.isa, t_pad, hd, s.k_s8, hd, s.packed_k);
    k::gemm_u8s8s32(ctx.isa, rows, t_pad, hd, qkv_img + static_cast<size_t>(r.begin) * ld + h * hd, ld, s.packed_k,
                    s.scores, t_pad);
    k::SoftmaxParams sp = sp0;
    sp.rows = rows;
    sp.colsum_k = s.colsum_k;
    if (attention_bits == 8) {
      k::softmax_u8(ctx.isa, s.scores, t_pad, sp, s.probs, w_ld, s.rowsum);
      k::pack_b_s8_transposed(ctx.isa, hd, t_count, s.v_s8, hd, s.packed_v);
      k::gemm_u8s8s32(ctx.isa, rows, hd, t_count, s.probs, w_ld, s.packed_v, s.out_acc, hd);
    } else {
      auto* w = reinterpret_cast<int16_t*>(s.probs);
      k::softmax_lis(ctx.isa, s.scores, t_pad, sp, w, w_ld, s.rowsum);
      k::pack_b16_s8_transposed(ctx.isa, hd, t_count, s.v_s8, hd, s.packed_v);
      k::gemm_s16s8s32(ctx.isa, rows, hd, t_count, w, w_ld, s.packed_v, s.out_acc, hd);
    }
    // V's zero point: subtracted per row by the requantization, or with
    // the 4-bit rows' rescaling to a unit sum.
    k::RequantU8Params rq = out_requant.params(out_zp).from(h * hd);
    if (attention_bits == 4 && lis_normalize) {
      k::attn_lis_rescale(ctx.isa, rows, hd, s.out_acc, hd, z_v, s.rowsum);
    } else {
      k::attn_row_sub(rows, z_v, s.rowsum);
      rq.row_sub = s.rowsum;
    }
    k::requant_u8(ctx.isa, rows, hd, s.out_acc, hd, rq, out_img + static_cast<size_t>(r.begin) * d_model + h * hd,
                  d_model);
  });
}

void PoolOp::run(ExecContext& ctx) const {
  const int64_t n = tokens - prefix;
  for (int b = 0; b < ctx.batch; ++b) {
    const int16_t* x = ctx.buf<int16_t>(in) + (static_cast<size_t>(b) * tokens + prefix) * dim;
    int32_t* sum = sum_out ? ctx.buf<int32_t>(out) + static_cast<size_t>(b) * dim : ctx.buf<int32_t>(sums);
    std::fill(sum, sum + dim, 0);
    for (int64_t t = 0; t < n; ++t, x += dim)
      for (int c = 0; c < dim; ++c) sum[c] += x[c];  // |sum| < 2^15 * 1025
    if (sum_out) continue;
    int16_t* y = ctx.buf<int16_t>(out) + static_cast<size_t>(b) * dim;
    for (int c = 0; c < dim; ++c) {
      const int64_t num = 2 * int64_t{sum[c]} + n, den = 2 * n;
      y[c] = static_cast<int16_t>(num / den - (num % den < 0 ? 1 : 0));  // floor
    }
  }
}

void RequantOp::run(ExecContext& ctx) const {
  const int m = ctx.batch * rows_per_image;
  k::requant_u8(ctx.isa, m, dim, ctx.buf<int32_t>(in), dim, channels.params(zero_point), ctx.buf<uint8_t>(out), dim);
}

void HeadOp::run(ExecContext& ctx) const {
  auto* accum = ctx.buf<int32_t>(acc);
  const uint8_t* x = ctx.buf<uint8_t>(in);
  const size_t n = static_cast<size_t>(linear.n), batch_n = static_cast<size_t>(ctx.batch) * n;
  linear.gemm(ctx.isa, ctx.batch, x, in_ld, accum);
  if (dist.n > 0) dist.gemm(ctx.isa, ctx.batch, x + linear.k, in_ld, accum + batch_n);
  for (size_t i = 0; i < batch_n; ++i) {
    const size_t c = i % n;
    // int64 sums: an int32 bias may be anything the file holds.
    const float logit = static_cast<float>(int64_t{accum[i]} + linear.bias[c]) * scale[c];
    ctx.logits[i] =
        dist.n > 0 ? (logit + static_cast<float>(int64_t{accum[batch_n + i]} + dist.bias[c]) * dist_scale[c]) / 2
                   : logit;
  }
}

}  // namespace vitint::engine
