// Per-path entry points of the elementwise kernels behind the Isa dispatch
// in quant_dispatch.cpp (which checks the Isa; nothing else is checked).
//
// Where an input leaves the range the vector code is exact for (an int32
// sum that would wrap, a zero point far outside the int16 range, a row of
// more than kMaxSimdCols softmax columns), the paths hand that piece of work
// to the reference function itself, so every input the reference defines
// gives the reference's result.
#pragma once
#include <cstdint>

#include "vitint/kernels/quant.h"

namespace vitint::kernels::detail {

// Softmax rows are kept in a stack buffer of this many int32 between passes.
constexpr int kMaxSimdCols = 4096;

void avx2_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                     uint8_t* out, int ld_out);
void avx2_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                       int16_t* stream, int ld_stream);
void avx2_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out,
                    int ld_out);
void avx2_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                     int ld_probs, int32_t* rowsum_p);
void avx2_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                      int ld_w, int32_t* rowsum_w);

void avx512_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                       uint8_t* out, int ld_out);
void avx512_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                         int16_t* stream, int ld_stream);
void avx512_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p,
                      uint8_t* out, int ld_out);
void avx512_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                       int ld_probs, int32_t* rowsum_p);
void avx512_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                        int ld_w, int32_t* rowsum_w);

// Conditions shared by both paths (cheap, per call or per row).

// |q - zp| < 2^16 and alpha <= 3 keep x = (q - zp) << alpha below 2^19, and a
// non-negative eps_term keeps sigma >= sqrt(D): the per-element products of
// the vector LayerNorm then stay inside the lanes they are computed in.
inline bool layernorm_simd_ok(const LayerNormParams& p) {
  if (p.in.zero_point < -32768 || p.in.zero_point > 32767 || p.eps_term < 0) return false;
  if (p.channels > (1 << 20)) return false;
  uint8_t any = 0;
  for (int c = 0; c < p.channels; ++c) any |= static_cast<uint8_t>(p.in.alpha[c] & ~3u);
  return any == 0;
}

// s - zp_in in int32 for every int16 s.
inline bool residual_skip_simd_ok(const ResidualParams& p) {
  return p.skip_mult == nullptr || (p.zp_in >= INT32_MIN + 32768 && p.zp_in <= INT32_MAX - 32768);
}

// One row of the reference softmax (used for rows whose logits span more
// than int32, or that are longer than kMaxSimdCols).
inline SoftmaxParams one_row(const SoftmaxParams& p) {
  SoftmaxParams r = p;
  r.rows = 1;
  return r;
}

}  // namespace vitint::kernels::detail
