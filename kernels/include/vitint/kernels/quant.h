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
// Requantization of GEMM accumulators to uint8 in 16-bit steps, with
// mulhrs(a, b) = (a * b + 2^14) >> 15 and sat16 = clamp to int16:
//   t = sat16(floor((a + b) / 2^s))        a = acc[i][j], or acc[i][j] - row_sub[i] (int32, wrapping)
//   v = mulhrs(t, m)
//   out[i][j] = clamp(zp + ((v + 2^(r-1)) >> r), 0, 255)     (r = 0: zp + v)
// per column j (b, s, m, r of requant_channels). With row_sub, a is the
// attention output's accumulator less V's zero point times the row's
// probability sum (attn_row_sub). Contract: |a + b| < 2^31 (the vector
// paths add in int32), s in [0, 30], m in [0, 2^15), r in [0, 15] (what
// requant_channels makes).
struct RequantU8Params {
  const int32_t* bias;        // [n] b
  const int32_t* in_shift;    // [n] s
  const int16_t* mult;        // [n] m
  const int16_t* out_shift;   // [n] r
  const uint8_t* zero_point;  // [n]
  const int32_t* row_sub = nullptr;  // [m] or none
  // The same parameters for the columns from j on.
  RequantU8Params from(int j) const {
    return {bias + j, in_shift + j, mult + j, out_shift + j, zero_point + j, row_sub};
  }
};

// The numbers of a requantization by the dyadic ratio mult * 2^-shift < 1
// (accumulator -> output steps) and a bias: r (<= 6) the largest for which
// m = round(ratio * 2^(15 + r)) fits 15 bits, then s (<= 30) the largest
// for which m = round(ratio * 2^(15 + s + r)) does; b = bias + 2^(s-1), the
// rounding term of the shift. Then t's step is at most 2^(1-r) output steps
// and t saturates only where the output does (|v| >= 2^14 > 2^r * 255).
// A ratio >= 1 (an output step finer than the accumulator's) leaves m at
// 2^15 - 1: callers refuse those (requant_ratio_ok). Exact integer
// arithmetic, as gelu_channels.
struct RequantChannels {
  std::vector<int32_t> bias, in_shift;
  std::vector<int16_t> mult, out_shift;
  RequantU8Params params(const uint8_t* zero_point, const int32_t* row_sub = nullptr) const {
    return {bias.data(), in_shift.data(), mult.data(), out_shift.data(), zero_point, row_sub};
  }
};
// bias may be null (no bias: the attention output's requantization).
RequantChannels requant_channels(int n, const int32_t* bias, const int32_t* mult, const int32_t* shift);
// mult * 2^-shift < 1.
bool requant_ratio_ok(int32_t mult, int32_t shift);
void requant_u8_ref(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                    uint8_t* out, int ld_out);

// ---------------------------------------------------------------------------
// GELU of an fc1 accumulator to uint8, in 16-bit steps (no int64 product
// after the input, no table gather). The activation is given as a table of
// round(f(x / 2^10) * 2^10) for x in [-2^15, 2^15), entry x + 2^15 (what the
// converter stores: GELU, or QuickGELU for OpenAI-style CLIP towers), of
// which the definition reads 33 entries: the spline knots at x = -128 k,
// k = 0..32. Both activations satisfy f(x) = x + f(-x), which the
// definition uses for x > 0. With mulhrs(a, b) = (a * b + 2^14) >> 15 (the
// rounding high half of a 16-bit product), sat16 = clamp to int16 and >>
// an arithmetic shift, per element of channel c (numbers of gelu_channels /
// gelu_spline):
//   t = sat16(floor((acc + b) / 2^s))       s = in_shift, b = bias + 2^(s-1) (gelu_channels)
//   x = mulhrs(t, m)              the input in units of 2^-(10 - e), e = frac_cut in [-2, 7]
//   a = min(|x|, 2^(12 - e) - 1) * 2^(e + 2)                    |x| in units of 2^-12, capped below 4
//   j = a >> 9;  u = (a mod 512) * 2^6                          spline piece (width 1/8), position in Q15
//   y = 8 c0[j] + mulhrs(u, 8 c1[j])                            f(-|x|) in units of 2^-13
//   g = sat16(mulhrs(y, 2^(12 - e)) + max(x, 0))                f(x) = x + f(-x)
//   v = mulhrs(g, om);  out = clamp(zp + ((v + 2^(r-1)) >> r), 0, 255)   (r = 0: zp + v)
// The spline's piece j is the line through the table at x = -128 j and
// -128 j - 128 (T0, T1): c0 = T0, c1 = T1 - T0; within 2.5 * 2^-10 of the
// activation between the knots (the line's own error, at most f''/8 of the
// piece's width squared, is below 1.7 * 2^-10 for GELU and QuickGELU; the
// table's and mulhrs's roundings add the rest). No step overflows int16
// (|c0| < 2^11, |c1| <= 127: gelu_spline refuses other tables, and the
// kernels require a spline it made).
// Contract: |acc + b| < 2^31 (the vector paths add in int32; |acc| <= 2^30,
// i.e. a GEMM with k <= 32896, and |bias| <= 2^29 keep it); s in [0, 30],
// m and om in [0, 2^15), e in [-2, 7], r in [0, 15] (what gelu_channels
// makes).
constexpr int kGeluFracBits = 10;
constexpr int kGeluTableSize = 1 << 16;
constexpr int kGeluPieces = 32;

// The GELU table the converter stores in every model:
// round(GELU(x / 2^10) * 2^10) for x in [-2^15, 2^15), entry x + 2^15; and
// for models with QuickGELU (the OpenAI-style CLIP towers) the same of
// x * sigmoid(1.702 x).
std::vector<int16_t> gelu_table();
std::vector<int16_t> quick_gelu_table();

struct GeluSpline {
  int16_t c0[kGeluPieces], c1[kGeluPieces];
};
// The spline of a table; false where a coefficient is out of the bounds
// above (not a GELU-like activation at 2^-10).
bool gelu_spline(const int16_t* table, GeluSpline* spline);

// The per-channel numbers of the definition, derived from the model file's
// two dyadics per channel: acc -> 2^-10 units (mult, shift) and 2^-10 units
// -> output steps (out_mult, out_shift), and the output zero point. e is the
// smallest in [-2, 7] (the finest input) for which every x that does not
// already saturate the output fits int16 with room for rounding
// (2^(14+e) * out_mult / 2^out_shift >= 255.5 - zp) and m stays below 2^15;
// s (<= 30) and r (<= 15) then make m (the rounded acc -> 2^-(10-e) ratio
// times 2^(15+s)) and om (the rounded 2^-(10-e) -> output ratio times
// 2^(15+r)) as large as fits 15 bits; b is the bias with the rounding term
// of the shift by s. Where even e = -2 and r = 0 leave om above 15 bits (an
// output step below 2^-12: a channel whose 256 output levels span less than
// 0.0625, one GELU holds near 0), om is 2^15 - 1 and such a channel's
// outputs stay inside that span. Exact integer arithmetic: the same file
// gives the same numbers everywhere.
struct GeluU8Params;
struct GeluChannels {
  std::vector<int32_t> bias;       // b
  std::vector<int32_t> in_shift;   // s
  std::vector<int16_t> in_mult;    // m
  std::vector<int16_t> frac_cut;   // e
  std::vector<int16_t> out_mult;   // om
  std::vector<int16_t> out_shift;  // r
  GeluU8Params params(const uint8_t* zero_point, const GeluSpline* spline) const;
};
GeluChannels gelu_channels(int n, const int32_t* bias, const int32_t* mult, const int32_t* shift,
                           const int32_t* out_mult, const int32_t* out_shift, const uint8_t* zero_point);

struct GeluU8Params {
  const int32_t* bias;        // [n] b
  const int32_t* in_shift;    // [n]
  const int16_t* in_mult;     // [n]
  const int16_t* frac_cut;    // [n]
  const int16_t* out_mult;    // [n]
  const int16_t* out_shift;   // [n]
  const uint8_t* zero_point;  // [n]
  const GeluSpline* spline;
  // The same parameters for the columns from j on.
  GeluU8Params from(int j) const {
    return {bias + j, in_shift + j, in_mult + j, frac_cut + j, out_mult + j, out_shift + j, zero_point + j, spline};
  }
};
inline GeluU8Params GeluChannels::params(const uint8_t* zero_point, const GeluSpline* spline) const {
  return {bias.data(), in_shift.data(), in_mult.data(), frac_cut.data(), out_mult.data(), out_shift.data(), zero_point, spline};
}
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

// The residual add where both stream points share one grid (the same base
// scale, zero point and alphas, so the skip term is the stream's own code),
// onto an int16 stream, in 16-bit steps. With mulhrs and sat16 as for
// gelu_u8, per element of channel c, q the stream's code and a the
// accumulator:
//   t = sat16(floor((a + b) / 2^s))        s = in_shift, b = bias + 2^(s-1)
//   B = sat16(t + mulhrs(t, m))            the branch in stream steps: t * (1 + m / 2^15)
//   q = sat16(q + B)
// s (<= 30) is the largest for which round(ratio * 2^(15 + s)) <= 65535 (the
// branch dyadic's ratio < 1), m that number less 2^15 (at least -32767, for
// ratios below 2^-45), so t's step is at most one stream step and t
// saturates only for a branch beyond ~2^15 steps. Where nothing saturates
// this is within two stream steps of residual_add's exact dyadic (t's and
// mulhrs's roundings, m's 16 bits). The kernels take m in [-32767, 32767].
struct Residual16Params {
  const int32_t* bias;      // [n] b
  const int32_t* in_shift;  // [n] s
  const int16_t* mult;      // [n] m
  Residual16Params from(int j) const { return {bias + j, in_shift + j, mult + j}; }
};
struct ResidualChannels {
  std::vector<int32_t> bias, in_shift;
  std::vector<int16_t> mult;
  Residual16Params params() const { return {bias.data(), in_shift.data(), mult.data()}; }
};
// residual_add16's numbers for a ResidualParams with one bias row; false
// where that does not apply (no skip input, a skip dyadic other than the
// identity 2^30 * 2^-30, zero points that differ, a stream range other than
// int16's, a branch ratio >= 1, a bias outside [-2^29, 2^29]): the exact
// residual_add runs then.
bool residual16_channels(int n, const ResidualParams& p, ResidualChannels* out);
void residual_add16_ref(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                        int ld_stream);

// ---------------------------------------------------------------------------
// Integer LayerNorm on a PTS stream row. Both forms share the statistics:
// x_c = (q_c - zp) << alpha_c; S = sum x_c; D = C * sum x_c^2 - S^2 + eps_term;
// sigma = isqrt(D); u_c = C x_c - S (sigma ~ C * std, u_c / sigma the
// normalized value).
//
// uint8 output (layernorm), in 16-bit steps after the statistics:
//   cs = ceil(sqrt(C)), T = 14 - bitlen(cs), r = bitlen(cs * (sigma + 1)) - 15
//   u'_c = floor(u_c / 2^r) (r >= 0) or u_c * 2^-r (r < 0)   |u'| < 2^15
//   R = sigma ? min(floor(2^(T + 15 + r) / sigma), 32767) : 0
//   t_c = floor((u'_c * R + 2^14) / 2^15)      the normalized value in Q(T)
//   p_c = floor((t_c * G_c + 2^14) / 2^15)
//   out_c = clamp(floor((p_c + B_c) / 2^e), 0, 255)
// (|u_c| <= sqrt(C * D) < cs * (sigma + 1) bounds u'; R reaches its clamp
// only for sigma < cs, near-constant rows; each multiply is a vpmulhrsw.)
// G_c, B_c (int16) and e (0..7) come from gamma_c, beta_c and g below
// (layernorm_u8_factors): G_c = round(gamma_c * 2^(15 + e - T - g)),
// B_c = floor(beta_c / 2^(16 + g - e)), both clamped to [-32767, 32767], e the
// largest that needs no clamp (0 if every e does). u' and t lose at most
// ~1.4e-3 of a standard deviation (C <= 768), so with gamma / s_out up to
// ~120 output steps per standard deviation (the real models' range) the
// output is within ~0.16 of a step of the real-valued LayerNorm's.
//
// int16 stream output (layernorm_stream: a pre-norm ViT's norm_pre), exactly:
// t_c = round(u_c * floor(2^48 / sigma) / 2^32) (the normalized value in Q16);
// out_c = clamp(floor((t_c * gamma_c + beta_c) / 2^(16+g)), qmin, qmax)
// where gamma_c = round(gamma / s_out * 2^g) and beta_c already holds
// (beta / s_out + zp_out + 1/2) * 2^(16+g). sigma = 0 (a constant row and
// eps_term = 0) gives t = 0.
struct LayerNormPrepared;
// Contract: C^2 * max|x|^2 + eps_term < 2^63 for x = (q - zp) << alpha (the
// reference's int64 statistics) and eps_term >= 0; the model loader's bounds
// (|q - zp| < 2^16, alpha <= 3, C <= 4096, 0 <= eps_term <= 2^40) keep it.
struct LayerNormParams {
  int channels;
  StreamQuant in;
  int64_t eps_term;       // round(C^2 * eps / s^2)
  const int32_t* gamma;   // [C]
  const int64_t* beta;    // [C]
  int32_t g_shift;        // g
  const LayerNormPrepared* prepared;  // layernorm_prepare(*this): required by the vector paths
};

// The uint8 LayerNorm's constants (see above).
struct LayerNormU8 {
  int t_bits = 0;    // T
  int out_shift = 0; // e
  int32_t csqrt = 0; // cs = ceil(sqrt(C))
  std::vector<int16_t> g, b;  // G_c, B_c
};
LayerNormU8 layernorm_u8_factors(const LayerNormParams& p);

// What the vector LayerNorm kernels derive from the parameters, made once per
// parameter set (the engine does it when it loads a model):
struct LayerNormPrepared {
  int channels = 0;
  // |zp| < 2^15, alpha <= 3 (x = (q - zp) << alpha stays below 2^19) and
  // eps_term >= 0 (sigma >= sqrt(D)): the vector kernels' per-element
  // products stay inside their lanes; otherwise they run the reference.
  bool vector_ok = false;
  LayerNormU8 u8;
  // The uint8 kernels' tables, zero-padded to a multiple of 64 channels, for
  // 32-bit lanes of channel pairs (2i, 2i+1) and 16-bit lanes in pack order
  // (vpackssdw of the even and the odd channels' lanes: channels
  // 8j + 0, 2, 4, 6, 1, 3, 5, 7 in the j-th eight words):
  //   even[i] = C 2^alpha of channel 2i, odd[i] = the same of channel 2i+1
  //   shifted into the high word (vpmaddwd / vpdpwssd factors of the raw q
  //   vector); zeven[i], zodd[i] = -zp C 2^alpha of those channels;
  //   gp, bp = G and B in pack order.
  // C 2^alpha < 2^15 and |u| < 2^31 need C <= 2047; wider rows' uint8
  // outputs run the reference (u8_vector_ok false).
  bool u8_vector_ok = false;
  std::vector<int32_t> even, odd, zeven, zodd;
  std::vector<int16_t> gp, bp;
  // The stream form's exact double-precision pass: |gamma| < 2^30 and
  // |beta| < 2^52 (the model loader enforces both), per channel and
  // zero-padded to a multiple of 16:
  // C * 2^alpha, C * 2^alpha * zp, gamma / 2^(16 + g), beta / 2^(16 + g).
  bool f64_ok = false;
  std::vector<double> ca, cz, gamma, beta;
};
LayerNormPrepared layernorm_prepare(const LayerNormParams& p);
// A uint8 LayerNorm row's shift r and multiplier R from its sigma.
struct LayerNormRowScale {
  int shift;     // r
  int32_t mult;  // R
};
LayerNormRowScale layernorm_row_scale(const LayerNormU8& f, uint32_t sigma);
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
