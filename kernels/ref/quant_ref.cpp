#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "vitint/kernels/quant.h"
#include "../quant_internal.h"

namespace vitint::kernels {
namespace {
// %g: "2.0377e+29", not std::to_string's 30 digits and six decimals.
std::string to_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

Dyadic make_dyadic(double ratio) {
  if (!(ratio >= 0.0) || !std::isfinite(ratio))
    throw std::invalid_argument("make_dyadic: ratio must be finite and >= 0, got " + to_text(ratio));
  if (ratio == 0.0) return {};
  int e = 0;
  const double m = std::frexp(ratio, &e);  // ratio = m * 2^e, m in [0.5, 1)
  int64_t mult = std::llround(m * 2147483648.0);
  if (mult == (int64_t{1} << 31)) {  // m rounded up to 1.0
    mult /= 2;
    ++e;
  }
  int shift = 31 - e;
  if (shift < 0)
    throw std::invalid_argument("make_dyadic: ratio " + to_text(ratio) + " is too large (>= 2^31)");
  while (shift > 62) {  // drop precision that the rounding shift cannot use anyway
    mult >>= 1;
    --shift;
    if (mult == 0) return {};
  }
  return {static_cast<int32_t>(mult), shift};
}

uint32_t isqrt_u64(uint64_t v) {
  uint64_t root = 0;
  uint64_t bit = uint64_t{1} << 62;
  while (bit > v) bit >>= 2;
  while (bit != 0) {
    if (v >= root + bit) {
      v -= root + bit;
      root = (root >> 1) + bit;
    } else {
      root >>= 1;
    }
    bit >>= 2;
  }
  return static_cast<uint32_t>(root);
}

namespace {
// round(f(x / 2^10) * 2^10) for x in [-2^15, 2^15), entry x + 2^15.
template <class F>
std::vector<int16_t> activation_table(F&& f) {
  std::vector<int16_t> t(kGeluTableSize);
  for (int x = 0; x < kGeluTableSize; ++x) {
    const double r = double(x - kGeluTableSize / 2) / (1 << kGeluFracBits);
    t[static_cast<size_t>(x)] = static_cast<int16_t>(std::clamp(std::round(f(r) * (1 << kGeluFracBits)), -32768.0, 32767.0));
  }
  return t;
}
}  // namespace

std::vector<int16_t> gelu_table() {
  return activation_table([](double r) { return 0.5 * r * (1.0 + std::erf(r / std::sqrt(2.0))); });
}

std::vector<int16_t> quick_gelu_table() {
  return activation_table([](double r) { return r / (1.0 + std::exp(-1.702 * r)); });
}

bool gelu_spline(const int16_t* table, GeluSpline* spline) {
  auto at = [table](int x) { return int32_t{table[x + kGeluTableSize / 2]}; };
  for (int j = 0; j < kGeluPieces; ++j) {
    const int32_t t0 = at(-128 * j), c1 = at(-128 * j - 128) - t0;
    if (t0 <= -2048 || t0 >= 2048 || c1 < -127 || c1 > 127) return false;
    spline->c0[j] = static_cast<int16_t>(t0);
    spline->c1[j] = static_cast<int16_t>(c1);
  }
  return true;
}

namespace {
// round(v * 2^k), half up, for 0 <= v < 2^31 (2^40 where it is larger).
int64_t scaled(int64_t v, int k) {
  if (k >= 0) return k >= 40 || v >= (int64_t{1} << (40 - k)) ? (v > 0 ? int64_t{1} << 40 : 0) : v << k;
  if (k < -62) return 0;
  return (v + (int64_t{1} << (-k - 1))) >> -k;
}
int16_t to_i16(int64_t v) { return static_cast<int16_t>(std::min<int64_t>(v, 32767)); }
// The largest k in [0, limit] for which round(v * 2^(base + k)) <= bound
// (0 if none is): how far a 15-bit (or, with bound 65535, 16-bit)
// multiplier can be scaled up.
int fit15(int64_t v, int base, int limit, int64_t bound = 32767) {
  int k = 0;
  while (k < limit && scaled(v, base + k + 1) <= bound) ++k;
  return k;
}
int32_t sat16(int64_t v) { return static_cast<int32_t>(std::clamp<int64_t>(v, -32768, 32767)); }
// The rounding high half of a 16-bit product (vpmulhrsw).
int32_t mulhrs(int32_t a, int32_t b) { return (a * b + (1 << 14)) >> 15; }
// The 16-bit requantizations' first and last steps (quant.h): the
// accumulator (plus b) shifted into int16, and the output's rounding shift,
// zero point and clamp.
int32_t to16(int32_t a, int32_t b, int s) { return sat16((int64_t{a} + b) >> s); }
int32_t to_u8(int32_t v, int r, int32_t zp) {
  return clamp_i32(zp + ((v + (r > 0 ? 1 << (r - 1) : 0)) >> r), 0, 255);
}
}  // namespace

GeluChannels gelu_channels(int n, const int32_t* bias, const int32_t* mult, const int32_t* shift,
                           const int32_t* out_mult, const int32_t* out_shift, const uint8_t* zero_point) {
  GeluChannels g;
  for (int c = 0; c < n; ++c) {
    // 255.5 - zp <= 2^(14+e) * out_mult / 2^out_shift, doubled.
    auto fits = [&](int e) {
      const int64_t om = out_mult[c], need = 511 - 2 * zero_point[c];  // need in [1, 511]
      const int diff = 15 + e - out_shift[c];
      if (diff >= 0) return diff >= 32 ? om > 0 : (om << diff) >= need;
      return -diff < 32 && om >= (need << -diff);
    };
    int e = -2;
    while (e < 7 && (!fits(e) || scaled(mult[c], 15 - e - shift[c]) > 32767)) ++e;
    const int r = fit15(out_mult[c], e + 15 - out_shift[c], 15);
    const int s = fit15(mult[c], 15 - e - shift[c], 30);
    g.bias.push_back(bias[c] + (s > 0 ? 1 << (s - 1) : 0));
    g.in_shift.push_back(s);
    g.in_mult.push_back(to_i16(scaled(mult[c], 15 + s - e - shift[c])));
    g.frac_cut.push_back(static_cast<int16_t>(e));
    g.out_mult.push_back(to_i16(scaled(out_mult[c], e + 15 + r - out_shift[c])));
    g.out_shift.push_back(static_cast<int16_t>(r));
  }
  return g;
}

namespace {
// gelu_u8's definition (quant.h) for one element of column j.
int32_t gelu_one(int32_t acc, const GeluU8Params& p, int j) {
  const GeluSpline& sp = *p.spline;
  const int e = p.frac_cut[j];
  const int32_t x = mulhrs(to16(acc, p.bias[j], p.in_shift[j]), p.in_mult[j]);
  const int32_t a = std::min(x < 0 ? -x : x, (1 << (12 - e)) - 1) << (e + 2);
  const int32_t piece = a >> 9, u = (a & 511) << 6;
  const int32_t y = 8 * sp.c0[piece] + mulhrs(u, 8 * sp.c1[piece]);
  const int32_t g = sat16(int64_t{mulhrs(y, 1 << (12 - e))} + std::max(x, 0));
  return to_u8(mulhrs(g, p.out_mult[j]), p.out_shift[j], p.zero_point[j]);
}
}  // namespace

void gelu_u8_ref(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                 int ld_out) {
  for (int i = 0; i < m; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    uint8_t* o = out + static_cast<int64_t>(i) * ld_out;
    for (int j = 0; j < n; ++j) o[j] = static_cast<uint8_t>(gelu_one(a[j], p, j));
  }
}

RequantChannels requant_channels(int n, const int32_t* bias, const int32_t* mult, const int32_t* shift) {
  RequantChannels q;
  for (int c = 0; c < n; ++c) {
    const int r = fit15(mult[c], 15 - shift[c], 6);
    const int s = fit15(mult[c], 15 + r - shift[c], 30);
    q.bias.push_back((bias ? bias[c] : 0) + (s > 0 ? 1 << (s - 1) : 0));
    q.in_shift.push_back(s);
    q.mult.push_back(to_i16(scaled(mult[c], 15 + s + r - shift[c])));
    q.out_shift.push_back(static_cast<int16_t>(r));
  }
  return q;
}

bool requant_ratio_ok(int32_t mult, int32_t shift) {
  // mult < 2^31 <= 2^shift from shift 31 on.
  return mult >= 0 && shift >= 0 && shift <= 62 && (shift >= 31 || mult < (int64_t{1} << shift));
}

void requant_u8_ref(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                    uint8_t* out, int ld_out) {
  for (int i = 0; i < m; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    uint8_t* o = out + static_cast<int64_t>(i) * ld_out;
    const uint32_t sub = p.row_sub ? static_cast<uint32_t>(p.row_sub[i]) : 0;
    for (int j = 0; j < n; ++j) {
      const auto x = static_cast<int32_t>(static_cast<uint32_t>(a[j]) - sub);
      o[j] = static_cast<uint8_t>(to_u8(mulhrs(to16(x, p.bias[j], p.in_shift[j]), p.mult[j]), p.out_shift[j], p.zero_point[j]));
    }
  }
}

void residual_add_ref(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                      int16_t* stream, int ld_stream) {
  for (int i = 0; i < m; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    const int32_t* bias = p.bias + static_cast<int64_t>(i) * p.bias_ld;
    int16_t* s = stream + static_cast<int64_t>(i) * ld_stream;
    for (int j = 0; j < n; ++j) {
      int32_t v = p.zp_out + apply_dyadic(int64_t{a[j]} + bias[j], p.branch_mult[j], p.branch_shift[j]);
      if (p.skip_mult) v += apply_dyadic(int64_t{s[j]} - p.zp_in, p.skip_mult[j], p.skip_shift[j]);
      s[j] = static_cast<int16_t>(clamp_i32(v, p.qmin_out, p.qmax_out));
    }
  }
}

bool residual16_channels(int n, const ResidualParams& p, ResidualChannels* out) {
  if (p.skip_mult == nullptr || p.bias_ld != 0 || p.zp_in != p.zp_out || p.qmin_out != -32768 || p.qmax_out != 32767)
    return false;
  ResidualChannels r;
  for (int c = 0; c < n; ++c) {
    if (p.skip_mult[c] != (1 << 30) || p.skip_shift[c] != 30 || !requant_ratio_ok(p.branch_mult[c], p.branch_shift[c]) ||
        p.bias[c] < -(1 << 29) || p.bias[c] > (1 << 29))
      return false;
    const int s = fit15(p.branch_mult[c], 15 - p.branch_shift[c], 30, 65535);
    r.bias.push_back(p.bias[c] + (s > 0 ? 1 << (s - 1) : 0));
    r.in_shift.push_back(s);
    r.mult.push_back(static_cast<int16_t>(std::max<int64_t>(scaled(p.branch_mult[c], 15 + s - p.branch_shift[c]) - 32768, -32767)));
  }
  *out = std::move(r);
  return true;
}

void residual_add16_ref(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                        int ld_stream) {
  for (int i = 0; i < m; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    int16_t* q = stream + static_cast<int64_t>(i) * ld_stream;
    for (int j = 0; j < n; ++j) {
      const int32_t t = to16(a[j], p.bias[j], p.in_shift[j]);
      const int32_t b = sat16(int64_t{t} + mulhrs(t, p.mult[j]));
      q[j] = static_cast<int16_t>(sat16(int64_t{b} + q[j]));
    }
  }
}

namespace {
int bit_length(uint64_t v) { return v == 0 ? 0 : 64 - __builtin_clzll(v); }

// r clamped to [-32767, 32767]; sets *clamped when it had to.
int16_t clamp16(int64_t r, bool* clamped) {
  if (r > 32767 || r < -32767) {
    *clamped = true;
    r = r > 0 ? 32767 : -32767;
  }
  return static_cast<int16_t>(r);
}

// round(v * 2^k) (k < 0: half rounds up), clamped by clamp16.
int16_t scaled16(int64_t v, int k, bool* clamped) {
  if (k >= 0) return clamp16(k > 20 ? (v > 0 ? INT64_MAX : (v < 0 ? INT64_MIN : 0)) : v * (int64_t{1} << k), clamped);
  return clamp16(k < -62 ? (v < 0 ? -1 : 0) : ((v >> (-k - 1)) + 1) >> 1, clamped);
}

// floor(v / 2^k) for k > 0, clamped by clamp16.
int16_t floor16(int64_t v, int k, bool* clamped) { return clamp16(k > 62 ? (v < 0 ? -1 : 0) : v >> k, clamped); }

// The statistics of one row (see quant.h): S and sigma.
struct RowStats {
  int64_t sum;
  uint32_t sigma;
};

RowStats row_stats(const int16_t* q, const LayerNormParams& p) {
  int64_t sum = 0;
  int64_t sum_sq = 0;
  for (int c = 0; c < p.channels; ++c) {
    const int64_t x = int64_t{q[c] - p.in.zero_point} * (int64_t{1} << p.in.alpha[c]);
    sum += x;
    sum_sq += x * x;
  }
  const int64_t d = int64_t{p.channels} * sum_sq - sum * sum + p.eps_term;
  return {sum, isqrt_u64(static_cast<uint64_t>(d))};
}
}  // namespace

LayerNormU8 layernorm_u8_factors(const LayerNormParams& p) {
  LayerNormU8 f;
  const auto c_count = static_cast<uint64_t>(std::max(p.channels, 1));
  f.csqrt = static_cast<int32_t>(isqrt_u64(c_count));
  if (static_cast<uint64_t>(f.csqrt) * static_cast<uint64_t>(f.csqrt) < c_count) ++f.csqrt;
  f.t_bits = 14 - bit_length(static_cast<uint64_t>(f.csqrt));
  const auto n = static_cast<size_t>(std::max(p.channels, 0));
  for (int e = 7; e >= 0; --e) {
    bool clamped = false;
    f.g.assign(n, 0);
    f.b.assign(n, 0);
    for (size_t c = 0; c < n; ++c) {
      f.g[c] = scaled16(p.gamma[c], 15 + e - f.t_bits - p.g_shift, &clamped);
      f.b[c] = floor16(p.beta[c], 16 + p.g_shift - e, &clamped);
    }
    f.out_shift = e;
    if (!clamped) break;
  }
  return f;
}

LayerNormPrepared layernorm_prepare(const LayerNormParams& p) {
  LayerNormPrepared r;
  r.channels = p.channels;
  r.vector_ok = p.in.zero_point >= -32768 && p.in.zero_point <= 32767 && p.eps_term >= 0 && p.channels >= 0 &&
                p.channels <= (1 << 20);
  r.f64_ok = true;
  for (int c = 0; c < p.channels; ++c) {
    r.vector_ok = r.vector_ok && p.in.alpha[c] <= 3;
    r.f64_ok = r.f64_ok && p.gamma[c] < (1 << 30) && p.gamma[c] > -(1 << 30) && p.beta[c] < (int64_t{1} << 52) &&
               p.beta[c] > -(int64_t{1} << 52);
  }
  r.u8 = layernorm_u8_factors(p);
  if (!r.vector_ok) return r;
  r.u8_vector_ok = p.channels <= 2047;
  if (r.u8_vector_ok) {
    const size_t padded = (static_cast<size_t>(p.channels) + 63) / 64 * 64;
    for (auto* v : {&r.even, &r.odd, &r.zeven, &r.zodd}) v->assign(padded / 2, 0);
    r.gp.assign(padded, 0);
    r.bp.assign(padded, 0);
    for (int c = 0; c < p.channels; ++c) {
      const auto i = static_cast<size_t>(c) / 2;
      const int32_t m = p.channels << p.in.alpha[c];
      const int32_t z = -p.in.zero_point * m;
      if (c % 2 == 0) {
        r.even[i] = m;
        r.zeven[i] = z;
      } else {
        r.odd[i] = static_cast<int32_t>(static_cast<uint32_t>(m) << 16);
        r.zodd[i] = z;
      }
    }
    constexpr int kPackOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    for (size_t w = 0; w < padded; ++w) {
      const size_t c = w / 8 * 8 + static_cast<size_t>(kPackOrder[w % 8]);
      if (c >= static_cast<size_t>(p.channels)) continue;
      r.gp[w] = r.u8.g[c];
      r.bp[w] = r.u8.b[c];
    }
  }
  if (!r.f64_ok) return r;
  const size_t padded = (static_cast<size_t>(p.channels) + 15) / 16 * 16;
  for (auto* v : {&r.ca, &r.cz, &r.gamma, &r.beta}) v->assign(padded, 0.0);
  const double scale = std::ldexp(1.0, -(16 + p.g_shift));
  for (int c = 0; c < p.channels; ++c) {
    const auto i = static_cast<size_t>(c);
    r.ca[i] = static_cast<double>(int64_t{p.channels} << p.in.alpha[c]);
    r.cz[i] = r.ca[i] * p.in.zero_point;
    r.gamma[i] = static_cast<double>(p.gamma[c]) * scale;
    r.beta[i] = static_cast<double>(p.beta[c]) * scale;
  }
  return r;
}

LayerNormRowScale layernorm_row_scale(const LayerNormU8& f, uint32_t sigma) {
  const uint64_t bound = static_cast<uint64_t>(f.csqrt) * (uint64_t{sigma} + 1);
  LayerNormRowScale s;
  s.shift = bit_length(bound) - 15;
  // One 64-bit division per row (faster on Zen 5 than a double quotient
  // with exact integer corrections: DeiT-T rows 6.8 -> 6.3 us per call).
  const uint64_t m = sigma ? (uint64_t{1} << (f.t_bits + 15 + s.shift)) / sigma : 0;
  s.mult = static_cast<int32_t>(std::min<uint64_t>(m, 32767));
  return s;
}

void layernorm_ref(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out,
                   int ld_out) {
  LayerNormU8 local;
  const LayerNormU8& f = p.prepared ? p.prepared->u8 : (local = layernorm_u8_factors(p));
  for (int i = 0; i < rows; ++i) {
    const int16_t* q = in + static_cast<int64_t>(i) * ld_in;
    uint8_t* o = out + static_cast<int64_t>(i) * ld_out;
    const RowStats st = row_stats(q, p);
    const LayerNormRowScale rs = layernorm_row_scale(f, st.sigma);
    for (int c = 0; c < p.channels; ++c) {
      const int64_t x = int64_t{q[c] - p.in.zero_point} * (int64_t{1} << p.in.alpha[c]);
      const int64_t u = int64_t{p.channels} * x - st.sum;
      const int64_t u1 = rs.shift >= 0 ? u >> rs.shift : u * (int64_t{1} << -rs.shift);
      const int64_t t = (u1 * rs.mult + (1 << 14)) >> 15;
      const int64_t pc = (t * f.g[static_cast<size_t>(c)] + (1 << 14)) >> 15;
      const int64_t y = (pc + f.b[static_cast<size_t>(c)]) >> f.out_shift;
      o[c] = static_cast<uint8_t>(y < 0 ? 0 : (y > 255 ? 255 : y));
    }
  }
}

void layernorm_stream_ref(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                          int32_t qmax, int16_t* out, int ld_out) {
  const int c_count = p.channels;
  const int out_shift = 16 + p.g_shift;
  for (int i = 0; i < rows; ++i) {
    const int16_t* q = in + static_cast<int64_t>(i) * ld_in;
    int16_t* o = out + static_cast<int64_t>(i) * ld_out;
    const RowStats st = row_stats(q, p);
    const int64_t inv = st.sigma ? (int64_t{1} << 48) / st.sigma : 0;
    for (int c = 0; c < c_count; ++c) {
      const int64_t x = int64_t{q[c] - p.in.zero_point} * (int64_t{1} << p.in.alpha[c]);
      const int64_t t = ((int64_t{c_count} * x - st.sum) * inv + (int64_t{1} << 31)) >> 32;
      const int64_t y = (t * p.gamma[c] + p.beta[c]) >> out_shift;
      o[c] = static_cast<int16_t>(y < qmin ? qmin : (y > qmax ? qmax : y));
    }
  }
}

SoftmaxExp softmax_exp(int32_t to_exp_mult, int32_t to_exp_shift) {
  auto mult = [&](int shift) { return scaled(to_exp_mult, 15 + shift - (kToExpBits - kExpBits) - to_exp_shift); };
  constexpr int32_t kSaturated = 15 << kExpBits;  // nz from which e = 0
  int shift = -15;
  int64_t m = mult(shift);
  while (m < kSaturated && shift < 15) m = mult(++shift);
  if (m > 32767) return {};
  return {static_cast<int32_t>(m), shift, true};
}

int32_t iexp_ref(int32_t nz) {
  const int32_t q = nz >> kExpBits;
  if (q >= 16) return 0;
  const int32_t r = -(nz & ((1 << kExpBits) - 1));
  return (r * (r + kExpB) + kExpC) >> q;
}

namespace {
inline int32_t row_logit(const int32_t* a, const SoftmaxParams& p, int j) {
  return a[j] - p.zq * p.colsum_k[j];
}
inline int32_t exp_of(int32_t logit, int32_t row_max, const SoftmaxParams& p) {
  const int64_t x = int64_t{logit} - row_max;
  const int64_t scaled = p.exp_shift >= 0 ? x >> p.exp_shift : x * (int64_t{1} << -p.exp_shift);
  const int64_t y = std::max<int64_t>(scaled, -32768);
  return iexp_ref(static_cast<int32_t>((y * -p.exp_mult + (1 << 14)) >> 15));
}
// Row max of the logits and the sum of the row's i-exp values.
inline int64_t row_exp_sum(const int32_t* a, const SoftmaxParams& p, int32_t* row_max) {
  *row_max = row_logit(a, p, 0);
  for (int j = 1; j < p.cols; ++j) *row_max = std::max(*row_max, row_logit(a, p, j));
  int64_t sum = 0;
  for (int j = 0; j < p.cols; ++j) sum += exp_of(row_logit(a, p, j), *row_max, p);
  return sum;
}
}  // namespace

SoftmaxRecip softmax_recip(int64_t sum) {
  // R(s) < 2^16 <=> 255 * 2^(16+s) + sum / 2 < 2^16 * sum <=> 255 * 2^(16+s) <
  // limit: the largest such s, from a guess by bit length (255 * 2^(16+s) has
  // 24 + s bits), corrected by a step or two.
  const int64_t limit = sum * 65536 - sum / 2;
  int s = std::max(1, bit_length(static_cast<uint64_t>(limit)) - 25);
  while (s > 1 && (int64_t{255} << (16 + s)) >= limit) --s;
  while ((int64_t{255} << (17 + s)) < limit) ++s;
  return {static_cast<int32_t>(((int64_t{255} << (16 + s)) + sum / 2) / sum), s};
}

int32_t softmax_prob(int32_t e, const SoftmaxRecip& r) {
  const int64_t t = (int64_t{e} * r.mult) >> 16;
  return static_cast<int32_t>((t + (int64_t{1} << (r.shift - 1))) >> r.shift);
}

void softmax_u8_ref(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                    int ld_probs, int32_t* rowsum_p) {
  for (int i = 0; i < p.rows; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    uint8_t* o = probs + static_cast<int64_t>(i) * ld_probs;
    int32_t row_max = 0;
    const SoftmaxRecip r = softmax_recip(row_exp_sum(a, p, &row_max));
    int32_t total = 0;
    for (int j = 0; j < p.cols; ++j) {
      o[j] = static_cast<uint8_t>(softmax_prob(exp_of(row_logit(a, p, j), row_max, p), r));
      total += o[j];
    }
    rowsum_p[i] = total;
  }
}

int lis_code_ref(int64_t sum, int32_t e) {
  if (e <= 0) return kLisZeroCode;
  // round(sum / e) >= T  <=>  2 * sum + e >= 2 * e * T
  const int64_t num = 2 * sum + e;
  const int64_t den = 2 * int64_t{e};
  int f = 0;
  while (f < kLisZeroCode && num >= (den << (f + 1))) ++f;
  int code = f;
  if (f >= 1 && num >= 3 * int64_t{e} * (int64_t{1} << f)) ++code;
  return code >= kLisZeroCode ? kLisZeroCode : code;
}

void softmax_lis_ref(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                     int ld_w, int32_t* rowsum_w) {
  for (int i = 0; i < p.rows; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    int16_t* w = weights + static_cast<int64_t>(i) * ld_w;
    int32_t row_max = 0;
    const int64_t sum = row_exp_sum(a, p, &row_max);
    int32_t total = 0;
    for (int j = 0; j < p.cols; ++j) {
      const int code = lis_code_ref(sum, exp_of(row_logit(a, p, j), row_max, p));
      w[j] = static_cast<int16_t>(code >= kLisZeroCode ? 0 : (1 << (14 - code)));
      total += w[j];
    }
    rowsum_w[i] = total;
  }
}

void attn_row_sub(int m, int32_t zv, int32_t* rowsum) {
  for (int i = 0; i < m; ++i)
    rowsum[i] = static_cast<int32_t>(static_cast<uint32_t>(zv) * static_cast<uint32_t>(rowsum[i]));
}

void attn_lis_rescale_ref(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum) {
  detail::attn_lis_rescale_rows(m, acc, ld_acc, zv, rowsum, [n](int32_t* row, int64_t corr, int64_t r) {
    for (int j = 0; j < n; ++j) {
      const uint64_t prod = static_cast<uint64_t>(int64_t{row[j]} - corr) * static_cast<uint64_t>(r);
      row[j] = static_cast<int32_t>(static_cast<int64_t>(prod + (uint64_t{1} << 15)) >> 16);
    }
  });
}

void attn_kv_s8_ref(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                    int32_t* colsum_k) {
  detail::attn_kv_rows(tokens, n, k, v, ld, k_s8, v_s8, colsum_k,
                       [n](const uint8_t* kr, const uint8_t* vr, int8_t* kd, int8_t* vd) {
                         return detail::attn_kv_row_scalar(kr, vr, kd, vd, 0, n);
                       });
}

}  // namespace vitint::kernels
