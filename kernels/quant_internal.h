// Per-path entry points of the elementwise kernels behind the Isa dispatch
// in quant_dispatch.cpp (which checks the Isa, the GELU spline and the
// prepared LayerNorm that the kernels need).
//
// Where an input leaves the range the vector code is exact for (a zero
// point far outside the int16 range in LayerNorm, a softmax row longer than
// kMaxSimdCols), the paths hand that piece of work
// to the reference function itself, so every input the reference defines
// gives the reference's result.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "vitint/kernels/quant.h"

namespace vitint::kernels::detail {

// Softmax rows are kept in stack buffers of this many values between
// passes. Their sums of exponentials stay below kMaxSimdCols * 2^15, so
// 2 * sum + e (the Log-Int-Softmax comparison) fits int32.
constexpr int kMaxSimdCols = 4096;
static_assert(int64_t{2} * kMaxSimdCols * kExpC + kExpC < INT32_MAX, "softmax sums must fit int32");

void avx2_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                     uint8_t* out, int ld_out);
void avx2_gelu_u8(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                  int ld_out);
void avx2_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                       int16_t* stream, int ld_stream);
void avx2_residual_add16(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                         int ld_stream);
void avx2_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out,
                    int ld_out);
void avx2_layernorm_stream(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                           int32_t qmax, int16_t* out, int ld_out);
void avx2_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                     int ld_probs, int32_t* rowsum_p);
void avx2_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                      int ld_w, int32_t* rowsum_w);
void avx2_attn_lis_rescale(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum);
void avx2_attn_kv_s8(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                     int32_t* colsum_k);

void avx512_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                       uint8_t* out, int ld_out);
void avx512_gelu_u8(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                    int ld_out);
void avx512_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                         int16_t* stream, int ld_stream);
void avx512_residual_add16(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                           int ld_stream);
void avx512_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p,
                      uint8_t* out, int ld_out);
void avx512_layernorm_stream(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                             int32_t qmax, int16_t* out, int ld_out);
void avx512_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                       int ld_probs, int32_t* rowsum_p);
void avx512_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                        int ld_w, int32_t* rowsum_w);
void avx512_attn_lis_rescale(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum);
void avx512_attn_kv_s8(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                       int32_t* colsum_k);

// Helpers shared by both paths.

// isqrt_u64(v) (the floor of the square root) from the double square root:
// that is within 1 of the answer (v rounds to 53 bits, sqrt is correctly
// rounded), and two exact integer steps settle it. The digit-by-digit
// reference costs as much as a 192-channel row of the vector LayerNorm.
inline uint32_t isqrt_fast(uint64_t v) {
  uint64_t r = static_cast<uint64_t>(std::sqrt(static_cast<double>(v)));
  if (r > 0xFFFFFFFFu) r = 0xFFFFFFFFu;
  while (r * r > v) --r;
  while (r < 0xFFFFFFFFu && (r + 1) * (r + 1) <= v) ++r;
  return static_cast<uint32_t>(r);
}

// floor(2^48 / sigma) for sigma >= 1 from the double quotient (within 1 of
// it: 2^48 and sigma are exact, the division is correctly rounded) and exact
// integer steps; an int64 division has a long latency on the per-row chain.
inline int64_t inv_fast(uint32_t sigma) {
  constexpr int64_t kOne = int64_t{1} << 48;
  int64_t q = static_cast<int64_t>(281474976710656.0 / static_cast<double>(sigma));
  while (q * sigma > kOne) --q;
  while ((q + 1) * sigma <= kOne) ++q;
  return q;
}

// attn_kv_s8's walk over the tokens: row(kr, vr, kd, vd) converts one
// token's n keys and values and returns the sum of its int8 keys.
template <class Row>
inline void attn_kv_rows(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                         int32_t* colsum_k, Row&& row) {
  for (int t = 0; t < tokens; ++t) {
    const int64_t src = static_cast<int64_t>(t) * ld;
    const int64_t dst = static_cast<int64_t>(t) * n;
    colsum_k[t] = row(k + src, v + src, k_s8 + dst, v_s8 + dst);
  }
}

// Values [from, to) of one token's row of attn_kv_s8 in scalar code (the
// reference's whole row, the AVX2 kernel's tail); returns their keys' sum.
inline int32_t attn_kv_row_scalar(const uint8_t* kr, const uint8_t* vr, int8_t* kd, int8_t* vd, int from, int to) {
  int32_t sum = 0;
  for (int d = from; d < to; ++d) {
    kd[d] = static_cast<int8_t>(kr[d] - 128);
    vd[d] = static_cast<int8_t>(vr[d] - 128);
    sum += kd[d];
  }
  return sum;
}

// attn_lis_rescale_ref's per-row factor r (0 for rowsum <= 0).
inline int64_t lis_row_recip(int32_t rowsum) {
  return rowsum > 0 ? ((int64_t{1} << 30) + rowsum / 2) / rowsum : 0;
}

// attn_lis_rescale's walk over the rows: norm(row, corr, r) computes
// ((x - corr) * r + 2^15) >> 16 with corr = zv * rowsum in int64 and
// r = lis_row_recip(rowsum).
template <class Norm>
inline void attn_lis_rescale_rows(int m, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum, Norm&& norm) {
  for (int i = 0; i < m; ++i)
    norm(acc + static_cast<int64_t>(i) * ld_acc, int64_t{zv} * rowsum[i], lis_row_recip(rowsum[i]));
}

// A vector LayerNorm row's statistics (its first pass), from which its
// outputs (the second).
struct NormStats {
  int64_t sum;
  uint32_t sigma;
  int32_t x_min, x_max;  // tracked for a stream's wide rows only (layernorm_tracks_range)
};

// f(std::bool_constant<a>): a run-time flag as a template argument (the
// AVX-512 epilogues: a whole block of columns, loaded and stored unmasked).
template <class F>
inline void with_flag(bool a, F&& f) {
  if (a) f(std::true_type{});
  else f(std::false_type{});
}

// f(std::bool_constant<a>, std::bool_constant<b>): two run-time flags as
// template arguments of a kernel's block function (residual add: shifts
// >= 32, int16 clamp; requantization: whole block, a row term).
template <class F>
inline void with_flags(bool a, bool b, F&& f) {
  with_flag(a, [&](auto x) { with_flag(b, [&](auto y) { f(x, y); }); });
}

// When the vector LayerNorms' double-precision second pass (norm8_f64) is
// exact for a row: the parameters allow it (prepared->f64_ok), the row has
// inv > 0, and max |C x - S| * inv <= 2^53 - 2^32. Rows of at most 256
// channels need no range for that: |C x - S| <= sqrt(C - 1) * sqrt(D) (one
// channel cannot deviate by more than sqrt(C - 1) standard deviations) and
// sqrt(D) < 2 * sigma (sigma = isqrt(D + eps) >= 1), so |C x - S| * inv <
// sqrt(C - 1) * 2^49 <= 2^53 - 2^32. Wider rows track their smallest and
// largest x (layernorm_tracks_range) for the test.
inline bool layernorm_tracks_range(int channels) { return channels > 256; }

// The prepared per-channel factors of that pass as plain pointers, taken
// once per row: the pass's output stores (uint8_t may alias anything) would
// otherwise make the compiler reload the vectors' data pointers for every
// vector of channels (AVX-512, medians of alternating runs: DeiT-S rows
// 42.0 -> 40.6 us per LayerNorm, DeiT-T 20.5 -> 19.2 us).
struct F64Factors {
  const double *ca, *cz, *gamma, *beta;
  explicit F64Factors(const LayerNormPrepared& t)
      : ca(t.ca.data()), cz(t.cz.data()), gamma(t.gamma.data()), beta(t.beta.data()) {}
};

inline bool layernorm_f64_exact(const LayerNormPrepared& prepared, int64_t sum, int64_t inv, int32_t x_min,
                                int32_t x_max) {
  if (!prepared.f64_ok || inv <= 0) return false;
  if (!layernorm_tracks_range(prepared.channels)) return true;
  // |C x| < 2^40, |S| < 2^40; u_max * inv <= 2^53 - 2^32 tested in double: a
  // product within 2^53 - 2^33 after one rounding (relative error <= 2^-53)
  // is within 2^53 - 2^32 exactly.
  const int64_t u_hi = int64_t{prepared.channels} * x_max - sum;
  const int64_t u_lo = sum - int64_t{prepared.channels} * x_min;
  return static_cast<double>(std::max(u_hi, u_lo)) * static_cast<double>(inv) <= 9007190664806400.0;
}

}  // namespace vitint::kernels::detail
