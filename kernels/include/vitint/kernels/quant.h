// Integer building blocks of the ViT pipeline: dyadic requantization,
// power-of-two-scale LayerNorm, i-exp softmax (8-bit uniform and 4-bit
// Log-Int-Softmax), residual adds. These scalar functions are normative:
// every optimized path must reproduce them bit for bit.
#pragma once
#include <cstdint>
#include <vector>

namespace vitint::kernels {

// A real multiplier represented as mult * 2^-shift, mult in [2^30, 2^31)
// (or 0), shift in [0, 62].
struct Dyadic {
  int32_t mult = 0;
  int32_t shift = 0;
};

// Offline only (converter): the dyadic form of a non-negative ratio. Ratios
// >= 2^31 cannot be represented and throw; tiny ratios become zero.
Dyadic make_dyadic(double ratio);

// round(x * mult / 2^shift), rounding half up (towards +inf). Contract:
// |x * mult| + 2^(shift-1) < 2^63 (true for |x| < 2^31, and for a sum of
// two int32 unless mult > 1.5 * 2^30 and shift >= 35); the SIMD kernels rely
// on it too. The engine's operands (int8 GEMM accumulators,
// int16 stream values, plus an int32 bias or zero point) stay far inside.
inline int32_t apply_dyadic(int64_t x, int32_t mult, int32_t shift) {
  const int64_t p = x * mult;
  if (shift == 0) return static_cast<int32_t>(p);
  return static_cast<int32_t>((p + (int64_t{1} << (shift - 1))) >> shift);
}

inline int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Floor of the square root of a non-negative 64-bit integer (exact, digit by
// digit; no floating point, no iteration-count guesswork).
uint32_t isqrt_u64(uint64_t v);

// ---------------------------------------------------------------------------
// Requantization of GEMM accumulators to uint8:
//   out[i][j] = clamp(zp[j] + dyadic(a[i][j] + bias[j], mult[j], shift[j]), 0, 255)
// with a = acc, or with row_sub a = acc[i][j] - row_sub[i] (int32, wrapping):
// the attention output's zero point of V, zv * rowsum[i] (attn_row_sub).
struct RequantU8Params {
  const int32_t* bias;   // [n]
  const int32_t* mult;   // [n]
  const int32_t* shift;  // [n]
  const uint8_t* zero_point;  // [n]
  const int32_t* row_sub = nullptr;  // [m] or none
};
void requant_u8_ref(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                    uint8_t* out, int ld_out);

// ---------------------------------------------------------------------------
// GELU without an 8-bit bottleneck on its input: the fc1 accumulator becomes
// x = dyadic(acc + bias) in units of 2^-kGeluFracBits (per-channel
// multiplier), g = table[x + 2^15] for x in [-2^15, 2^15) (the table holds
// round(GELU(x / 2^10) * 2^10), one for all layers), g = x above that range
// and 0 below it (GELU is the identity / zero there to within 2^-10), then
//   out[i][j] = clamp(zp[j] + dyadic(g, out_mult[j], out_shift[j]), 0, 255).
constexpr int kGeluFracBits = 10;
constexpr int kGeluTableSize = 1 << 16;

// The table as the vector kernels read it: int32 entries (no 16-bit
// extraction after the gather) of the inputs where the table is neither 0
// nor the identity only (for GELU's table x in [-3731, 3731]: 30 KiB that stay
// in L1, where the whole int16 table takes 128 KiB), behind one 0 entry for
// every input below. Made once per table by gelu_widen.
struct GeluWideTable {
  int32_t lo = 0;  // table[x] == 0 for -2^15 <= x < lo
  int32_t hi = 0;  // table[x] == x for hi < x < 2^15 (lo <= hi + 1)
  std::vector<int32_t> entries;  // [0] = 0, [1 + x - lo] = table[x] for lo <= x <= hi
};
GeluWideTable gelu_widen(const int16_t* table);
// The GELU table the converter stores in every model:
// round(GELU(x / 2^10) * 2^10) for x in [-2^15, 2^15), entry x + 2^15; and
// for models with QuickGELU (the OpenAI-style CLIP towers) the same of
// x * sigmoid(1.702 x), which is likewise 0 / x beyond the table (within 2^-10).
std::vector<int16_t> gelu_table();
std::vector<int16_t> quick_gelu_table();

struct GeluU8Params {
  const int32_t* bias;       // [n]
  const int32_t* mult;       // [n] accumulator -> 2^-10 units
  const int32_t* shift;      // [n]
  const int16_t* table;      // [kGeluTableSize]
  const int32_t* out_mult;   // [n] 2^-10 units -> output scale
  const int32_t* out_shift;  // [n]
  const uint8_t* zero_point; // [n]
  const GeluWideTable* wide;  // gelu_widen(table): required by the vector paths
};
void gelu_u8_ref(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                 int ld_out);

// ---------------------------------------------------------------------------
// The residual stream: int16 storage of a power-of-two-scale (PTS) quantized
// tensor. Channel c holds q with real value s * 2^alpha[c] * (q - zp), one
// base scale s and one zero point for all channels, q in [qmin, qmax]
// (8-bit streams use [0, 255], 16-bit streams [-32768, 32767]).
struct StreamQuant {
  int32_t zero_point = 0;
  int32_t qmin = 0;
  int32_t qmax = 0;
  const uint8_t* alpha = nullptr;  // [channels], each 0..3
};

// Residual add fused into a GEMM epilogue, in place on the stream:
//   stream[i][j] = clamp(zp_out + dyadic(acc[i][j] + bias[j], branch_mult[j], branch_shift[j])
//                     + dyadic(stream[i][j] - zp_in, skip_mult[j], skip_shift[j]), qmin_out, qmax_out)
// Per channel multipliers carry the old and new alpha. bias is one [n]
// row for all rows (bias_ld = 0) or [m] rows bias_ld apart (bias_ld >= n, used
// by the patch embedding where it holds the position embedding). skip_mult == nullptr means there is no
// skip input (the stream is written from the branch alone).
struct ResidualParams {
  const int32_t* bias;
  int bias_ld;
  const int32_t* branch_mult;
  const int32_t* branch_shift;
  const int32_t* skip_mult;
  const int32_t* skip_shift;
  int32_t zp_in;
  int32_t zp_out;
  int32_t qmin_out;
  int32_t qmax_out;
};
void residual_add_ref(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                      int16_t* stream, int ld_stream);

// ---------------------------------------------------------------------------
// Integer LayerNorm on a PTS stream row, uint8 output.
// x_c = (q_c - zp) << alpha_c; S = sum x_c; D = C * sum x_c^2 - S^2 + eps_term;
// sigma = isqrt(D); t_c = round((C*x_c - S) * floor(2^48 / sigma) / 2^32)
// (the normalized value in Q16); out_c = clamp(floor((t_c * gamma_c + beta_c) / 2^(16+g)), 0, 255)
// where gamma_c = round(gamma / s_out * 2^g) and beta_c already holds
// (beta / s_out + zp_out + 1/2) * 2^(16+g). sigma = 0 (a constant row and
// eps_term = 0) gives t = 0.
struct LayerNormPrepared;
// Contract: C^2 * max|x|^2 + eps_term < 2^63 for x = (q - zp) << alpha (the
// reference's int64 statistics); the model loader's bounds (|q - zp| < 2^16,
// alpha <= 3, C <= 4096, eps_term <= 2^40) keep it.
struct LayerNormParams {
  int channels;
  StreamQuant in;
  int64_t eps_term;       // round(C^2 * eps / s^2)
  const int32_t* gamma;   // [C]
  const int64_t* beta;    // [C]
  int32_t g_shift;        // g
  const LayerNormPrepared* prepared;  // layernorm_prepare(*this): required by the vector paths
};

// What the vector LayerNorm kernels derive from the parameters, made once per
// parameter set (the engine does it when it loads a model):
struct LayerNormPrepared {
  int channels = 0;
  // |zp| < 2^15, alpha <= 3 (x = (q - zp) << alpha stays below 2^19) and
  // eps_term >= 0 (sigma >= sqrt(D)): the vector kernels' per-element
  // products stay inside their lanes; otherwise they run the reference.
  bool vector_ok = false;
  // |gamma| < 2^30 and |beta| < 2^52 (the model loader enforces both): the
  // AVX-512 kernel's double-precision pass is exact (see there).
  bool f64_ok = false;
  // For that pass, per channel and zero-padded to a multiple of 16:
  // C * 2^alpha, C * 2^alpha * zp, gamma / 2^(16 + g), beta / 2^(16 + g).
  std::vector<double> ca, cz, gamma, beta;
};
LayerNormPrepared layernorm_prepare(const LayerNormParams& p);
void layernorm_ref(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out,
                   int ld_out);
// The same LayerNorm onto a residual stream (a pre-norm ViT's norm_pre):
// out_c = clamp(floor((t_c * gamma_c + beta_c) / 2^(16+g)), qmin, qmax) as
// int16, gamma_c and beta_c made for the stream's scale s * 2^alpha_c and
// zero point (-32768 <= qmin <= qmax <= 32767).
void layernorm_stream_ref(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                          int32_t qmax, int16_t* out, int ld_out);

// ---------------------------------------------------------------------------
// Softmax of attention logits. acc[i][j] are raw u8 x s8 sums of q_i and
// k_j; the true logit is proportional to l = acc - zq * colsum_k[j] (terms
// constant along a row cancel). Each row, in steps whose values fit 16 bits:
//   x  = l - max(l) <= 0
//   y  = max(floor(x * 2^-exp_shift), -32768)   (exp_shift in [-15, 15])
//   nz = (y * -exp_mult + 2^14) >> 15            (-x in units of ln2 / 2^kExpBits)
//   e  = iexp_ref(nz), I-BERT's i-exp: poly(r) >> q with q = nz >> kExpBits,
//        r = -(nz mod 2^kExpBits), poly(r) = r * (r + kExpB) + kExpC
// and e = 0 from q = 16 on. With kExpBits = 6, |r * (r + kExpB)| <= 11718 and
// poly <= kExpC < 2^15, so the vector paths run 16-bit lanes throughout.
// softmax_exp() picks exp_mult and exp_shift so that y = -32768 (the clamp)
// gives nz = exp_mult >= 15 * 2^kExpBits, where e is 0 anyway.
constexpr int kExpBits = 6;
// floor(b / s) and floor(c / s^2) for s = ln2 / 2^6, b = 0.96963238 / 0.35815147,
// c = 1 / 0.35815147 (I-BERT's second-order fit of exp on [-ln2, 0]).
constexpr int32_t kExpB = 249;
constexpr int32_t kExpC = 23803;
int32_t iexp_ref(int32_t nz);  // nz >= 0

// Contract: the logits acc - zq * colsum_k are int32 values (their
// differences may leave int32: x is formed exactly). Attention logits
// (|acc|, |zq * colsum_k| <= head_dim * 255 * 128) are far inside.
struct SoftmaxParams {
  int rows;
  int cols;
  const int32_t* colsum_k;  // [cols]
  int32_t zq;
  int32_t exp_mult;   // [0, 32767]: see above; from softmax_exp()
  int32_t exp_shift;  // [-15, 15]
};

// The model file gives the logit scale as to_exp = mult * 2^-shift units of
// ln2 / 2^kToExpBits per logit unit. softmax_exp() turns it into the
// softmax's (exp_mult, exp_shift): the smallest exp_shift in [-15, 15] whose
// exp_mult = round(to_exp * 2^(15 + exp_shift - (kToExpBits - kExpBits)))
// reaches 15 * 2^kExpBits, or 15 if none does. ok is false where exp_mult
// would exceed 32767 (one logit unit worth more than 32767 ln2 / 2^kExpBits).
constexpr int kToExpBits = 8;
struct SoftmaxExp {
  int32_t mult = 0;
  int32_t shift = 0;
  bool ok = false;
};
SoftmaxExp softmax_exp(int32_t to_exp_mult, int32_t to_exp_shift);

// 8-bit uniform probabilities p = round(255 * e / sum e), scale 1/255, via a
// per-row 16-bit reciprocal: R = floor((255 * 2^(16+s) + sum / 2) / sum) for
// the largest s with R < 2^16, then p = (floor(e * R / 2^16) + 2^(s-1)) >> s
// (<= 255; s >= 1 as sum >= kExpC). rowsum_p[i] = sum_j p[i][j].
struct SoftmaxRecip {
  int32_t mult;   // R
  int32_t shift;  // s
};
SoftmaxRecip softmax_recip(int64_t sum);                // sum >= kExpC
int32_t softmax_prob(int32_t e, const SoftmaxRecip& r);  // 0 <= e <= sum
void softmax_u8_ref(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                    int ld_probs, int32_t* rowsum_p);
// 4-bit Log-Int-Softmax: code = round(log2(round(sum e / e))) as FQ-ViT
// defines it (leading one f of the ratio, plus one when ratio >= 1.5 * 2^f),
// computed by exact integer comparisons. Codes 0..14 mean 2^-code, 15 (and
// e = 0) means zero; the weight stored is 2^(14 - code) or 0. rowsum_w[i] =
// sum_j w[i][j].
constexpr int kLisZeroCode = 15;
int lis_code_ref(int64_t sum, int32_t e);
void softmax_lis_ref(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                     int ld_w, int32_t* rowsum_w);

// The attention output's accumulators, acc[i][j] = sum_t w[i][t] v[t][j]
// over V as int8 with zero point zv and rowsum[i] = sum_t w[i][t], are sums
// over v - zv once zv * rowsum[i] is subtracted (int32, wrapping):
// attn_row_sub turns rowsum into those terms in place, for requant_u8's
// row_sub. 4-bit Log-Int-Softmax rows rescaled to a unit sum of 2^14 are
// instead turned in place into ((acc - zv * rowsum[i]) * r + 2^15) >> 16 in
// int64 (the product modulo 2^64), truncated to int32, with
// r = floor((2^30 + rowsum[i] / 2) / rowsum[i]), or 0 where rowsum[i] <= 0.
void attn_row_sub(int m, int32_t zv, int32_t* rowsum);
void attn_lis_rescale_ref(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum);

// One head's keys and values, uint8 rows of n values at k[t * ld] and
// v[t * ld], as int8 x - 128 (x ^ 0x80) into k_s8 and v_s8 ([tokens][n]),
// with colsum_k[t] = sum over the row of k_s8 (what q.k^T's zero point of q
// multiplies).
void attn_kv_s8_ref(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                    int32_t* colsum_k);

}  // namespace vitint::kernels
