// The normative scalar building blocks of quant.h against values computed by
// hand (the optimized paths are checked against these functions elsewhere).
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "vitint/kernels/quant.h"

namespace vk = vitint::kernels;

namespace {
constexpr int32_t kOne = 1 << 30;  // with shift 30: multiplier 1.0
}  // namespace

TEST_CASE("make_dyadic: mantissa from 2^30 to 2^31, shift = 31 - exponent") {
  auto check = [](double ratio, int32_t mult, int32_t shift) {
    const vk::Dyadic d = vk::make_dyadic(ratio);
    CAPTURE(ratio);
    CHECK(d.mult == mult);
    CHECK(d.shift == shift);
  };
  check(1.0, kOne, 30);
  check(0.5, kOne, 31);
  check(3.0, 1610612736, 29);                 // 0.75 * 2^31, 2^2
  check(1e-9, 1152921505, 60);                // 1e-9 = 0.536870912 * 2^-29
  check(2147483647.0, INT32_MAX, 0);          // largest representable
  check(std::ldexp(1.0, -40), 1 << 22, 62);   // shift capped at 62, precision dropped
  check(0.0, 0, 0);
  check(1e-30, 0, 0);                         // below 2^-62 * 2^31: zero
  // Mantissas that round up to 1.0 move to the next exponent.
  check(1.0 - std::ldexp(1.0, -40), kOne, 30);
  CHECK_THROWS_AS(vk::make_dyadic(2147483648.0), std::invalid_argument);
  CHECK_THROWS_AS(vk::make_dyadic(2147483647.75), std::invalid_argument);  // rounds up to 2^31
  CHECK_THROWS_AS(vk::make_dyadic(-1.0), std::invalid_argument);
  CHECK_THROWS_AS(vk::make_dyadic(std::nan("")), std::invalid_argument);
  CHECK_THROWS_AS(vk::make_dyadic(INFINITY), std::invalid_argument);
}

TEST_CASE("apply_dyadic rounds half up, also for negative values") {
  // x * 0.5
  CHECK(vk::apply_dyadic(1, kOne, 31) == 1);    // 0.5 -> 1
  CHECK(vk::apply_dyadic(-1, kOne, 31) == 0);   // -0.5 -> 0
  CHECK(vk::apply_dyadic(3, kOne, 31) == 2);    // 1.5 -> 2
  CHECK(vk::apply_dyadic(-3, kOne, 31) == -1);  // -1.5 -> -1
  CHECK(vk::apply_dyadic(-5, kOne, 31) == -2);  // -2.5 -> -2
  CHECK(vk::apply_dyadic(2, kOne, 31) == 1);
  CHECK(vk::apply_dyadic(-2, kOne, 31) == -1);
  // x * 0.25: -0.75 -> -1, -0.25 -> 0, 0.75 -> 1
  CHECK(vk::apply_dyadic(-3, kOne, 32) == -1);
  CHECK(vk::apply_dyadic(-1, kOne, 32) == 0);
  CHECK(vk::apply_dyadic(3, kOne, 32) == 1);
  // Shift 0 multiplies without rounding; multiplier 0 gives 0.
  CHECK(vk::apply_dyadic(-7, 3, 0) == -21);
  CHECK(vk::apply_dyadic(123456, 0, 17) == 0);
  // Identity at full scale, largest inputs.
  CHECK(vk::apply_dyadic(INT32_MAX, kOne, 30) == INT32_MAX);
  CHECK(vk::apply_dyadic(INT32_MIN, kOne, 30) == INT32_MIN);
  // 62-bit shift: (2^31 - 1) * (2^31 - 1) / 2^62 = 0.99999... -> 1
  CHECK(vk::apply_dyadic(INT32_MAX, INT32_MAX, 62) == 1);
  CHECK(vk::apply_dyadic(-INT32_MAX, INT32_MAX, 62) == -1);
}

TEST_CASE("isqrt_u64 is the exact floor of the square root") {
  CHECK(vk::isqrt_u64(0) == 0);
  CHECK(vk::isqrt_u64(1) == 1);
  CHECK(vk::isqrt_u64(2) == 1);
  CHECK(vk::isqrt_u64(3) == 1);
  CHECK(vk::isqrt_u64(4) == 2);
  CHECK(vk::isqrt_u64(99) == 9);
  CHECK(vk::isqrt_u64(100) == 10);
  CHECK(vk::isqrt_u64(101) == 10);
  CHECK(vk::isqrt_u64(uint64_t{1} << 62) == (1u << 31));
  CHECK(vk::isqrt_u64(UINT64_MAX) == 4294967295u);
  for (uint64_t k : {uint64_t{3}, uint64_t{1000}, uint64_t{65535}, uint64_t{3037000499}, uint64_t{4294967295}}) {
    CAPTURE(k);
    CHECK(vk::isqrt_u64(k * k) == k);
    CHECK(vk::isqrt_u64(k * k - 1) == k - 1);
    if (k < 4294967295u) CHECK(vk::isqrt_u64(k * k + 1) == k);
  }
  CHECK(vk::isqrt_u64(uint64_t{4294967295} * 4294967295u + 1) == 4294967295u);
}

TEST_CASE("iexp_ref: I-BERT polynomial on -ln2..0, then a shift per ln2") {
  CHECK(vk::iexp_ref(0) == vk::kExpC);
  CHECK(vk::iexp_ref(1) == 23555);                 // -1 * 248 + kExpC
  CHECK(vk::iexp_ref(32) == 16859);                // exp(-ln2 / 2) * kExpC = 16831
  CHECK(vk::iexp_ref(63) == 12085);
  CHECK(vk::iexp_ref(64) == vk::kExpC / 2);        // exactly one ln2: 11901
  CHECK(vk::iexp_ref(65) == 23555 / 2);
  CHECK(vk::iexp_ref(14 * 64) == 1);               // kExpC >> 14
  CHECK(vk::iexp_ref(15 * 64) == 0);
  CHECK(vk::iexp_ref(16 * 64) == 0);               // q >= 16: 0 by definition
  CHECK(vk::iexp_ref(32767) == 0);
  // Every value fits int16; monotone over the domain.
  for (int32_t nz = 0; nz < 32767; ++nz) {
    REQUIRE(vk::iexp_ref(nz) <= 32767);
    REQUIRE(vk::iexp_ref(nz) >= vk::iexp_ref(nz + 1));
  }
}

TEST_CASE("softmax_exp: the exponent scale from the model file's logit scale") {
  // to_exp = 1 (ln2 / 256 per logit unit) = 1/4 step of ln2 / 64: the
  // smallest shift with round(2^(13 + shift)) >= 960 is -3 (mult 1024).
  vk::SoftmaxExp e = vk::softmax_exp(1 << 30, 30);
  CHECK(e.ok);
  CHECK(e.shift == -3);
  CHECK(e.mult == 1024);
  // A DeiT-like scale, 0.074 ln2 / 256 per unit: shift 1, mult round(0.074 * 2^14).
  e = vk::softmax_exp(1271310320, 34);  // make_dyadic(0.074)
  CHECK(e.ok);
  CHECK(e.shift == 1);
  CHECK(e.mult == 1212);
  // Tiny scales stop at shift 15 below 960; zero gives mult 0.
  e = vk::softmax_exp(1 << 30, 62);
  CHECK(e.ok);
  CHECK(e.shift == 15);
  CHECK(e.mult == 0);
  // Huge ones (2^30 ln2 / 256 per unit) cannot be represented.
  CHECK_FALSE(vk::softmax_exp(1 << 30, 0).ok);
}


TEST_CASE("lis_code_ref: round(log2(round(sum / e))) with FQ-ViT's rounding") {
  CHECK(vk::lis_code_ref(1000, 1000) == 0);  // ratio 1
  CHECK(vk::lis_code_ref(1490, 1000) == 0);  // 1.49 rounds to 1
  CHECK(vk::lis_code_ref(1500, 1000) == 1);  // 1.5 rounds (half up) to 2
  CHECK(vk::lis_code_ref(2000, 1000) == 1);
  CHECK(vk::lis_code_ref(2999, 1000) == 2);  // rounds to 3 = 1.5 * 2: up
  CHECK(vk::lis_code_ref(3000, 1000) == 2);
  CHECK(vk::lis_code_ref(5000, 1000) == 2);  // 5 < 6 = 1.5 * 4
  CHECK(vk::lis_code_ref(6000, 1000) == 3);
  CHECK(vk::lis_code_ref(11400, 1000) == 3);  // 11
  CHECK(vk::lis_code_ref(11500, 1000) == 4);  // 12 = 1.5 * 8
  CHECK(vk::lis_code_ref(16384, 1) == 14);    // 2^14 < 1.5 * 2^14
  CHECK(vk::lis_code_ref(24575, 1) == 14);
  CHECK(vk::lis_code_ref(24576, 1) == 15);    // 1.5 * 2^14 -> code 15 = zero
  CHECK(vk::lis_code_ref(int64_t{1} << 40, 3) == 15);  // large
  CHECK(vk::lis_code_ref(1000, 0) == 15);     // e = 0
  CHECK(vk::lis_code_ref(1000, -5) == 15);
}

namespace {
const uint8_t kAlpha0[2] = {0, 0};
// Two channels of an int16 stream with zero point 0 and alpha 0; eps_term 0, g = 0.
vk::LayerNormParams two_channels(const int32_t* gamma, const int64_t* beta) {
  vk::LayerNormParams p{};
  p.channels = 2;
  p.in = {0, -32768, 32767, kAlpha0};
  p.eps_term = 0;
  p.gamma = gamma;
  p.beta = beta;
  p.g_shift = 0;
  return p;
}
}  // namespace

TEST_CASE("layernorm_ref on tiny rows, by hand") {
  const uint8_t* alpha0 = kAlpha0;
  const int32_t gamma[2] = {10, 10};
  // beta = (128 + 1/2) * 2^16: zero point 128 and round-half-up folded in.
  const int64_t beta[2] = {8421376, 8421376};
  vk::LayerNormParams p = two_channels(gamma, beta);
  // C = 2: cs = 2, T = 12; e = 7 (G = 10 * 2^(15 + 7 - 12) = 10240,
  // B = 128.5 * 2^7 = 16448). x = {1, -1}: S = 0, D = 2 * 2 - 0 = 4,
  // sigma = 2, r = bitlen(2 * 3) - 15 = -12, R = 2^15 / 2 = 16384,
  // u' = {2, -2} * 2^12, t = (u' * R + 2^14) >> 15 = 4096, -4096 (+-1.0 in
  // Q12), p = 1280, -1280 (+-10 * 2^7), out = (p + B) >> 7 = floor(138.5),
  // floor(118.5).
  const vk::LayerNormU8 f = vk::layernorm_u8_factors(p);
  CHECK(f.t_bits == 12);
  CHECK(f.out_shift == 7);
  CHECK(f.g == std::vector<int16_t>{10240, 10240});
  CHECK(f.b == std::vector<int16_t>{16448, 16448});
  const int16_t row[2] = {1, -1};
  uint8_t out[2] = {};
  vk::layernorm_ref(1, row, 2, p, out, 2);
  CHECK(out[0] == 138);
  CHECK(out[1] == 118);
  // Same through alpha: q = {1, 0} with alpha {1, 0} and zero point 0 gives
  // x = {2, 0}: S = 2, D = 2 * 4 - 4 = 4, (C x - S) = {2, -2} as above.
  const uint8_t alpha1[2] = {1, 0};
  p.in.alpha = alpha1;
  const int16_t row1[2] = {1, 0};
  vk::layernorm_ref(1, row1, 2, p, out, 2);
  CHECK(out[0] == 138);
  CHECK(out[1] == 118);
  // Zero point shifts x: q = {6, 4}, zp = 5 -> x = {1, -1}.
  p.in = {5, -32768, 32767, alpha0};
  const int16_t row2[2] = {6, 4};
  vk::layernorm_ref(1, row2, 2, p, out, 2);
  CHECK(out[0] == 138);
  CHECK(out[1] == 118);
  // A constant row with eps_term = 0: sigma = 0, t = 0, out = B >> 7.
  const int16_t flat[2] = {7, 7};
  vk::layernorm_ref(1, flat, 2, p, out, 2);
  CHECK(out[0] == 128);
  CHECK(out[1] == 128);
  // eps_term = 12: D = 16, sigma = 4, t = +-2048 (0.5): 128.5 +- 5.
  p.eps_term = 12;
  vk::layernorm_ref(1, row2, 2, p, out, 2);
  CHECK(out[0] == 133);
  CHECK(out[1] == 123);
  // g_shift = 4 (gamma and beta carry 2^4 more): G at e = 7 would not fit
  // 16 bits, e = 3 does (G = 19200, B = 1028); t = +-1.0 gives 128.5 +- 300,
  // clamped to 255 and 0.
  const int32_t big_gamma[2] = {300 << 4, 300 << 4};
  const int64_t beta_g[2] = {8421376LL << 4, 8421376LL << 4};
  p.gamma = big_gamma;
  p.beta = beta_g;
  p.g_shift = 4;
  p.eps_term = 0;
  CHECK(vk::layernorm_u8_factors(p).out_shift == 3);
  CHECK(vk::layernorm_u8_factors(p).b[0] == 1028);
  vk::layernorm_ref(1, row2, 2, p, out, 2);
  CHECK(out[0] == 255);
  CHECK(out[1] == 0);
}

TEST_CASE("layernorm_ref: within one output step of the real-valued LayerNorm") {
  // Rows as a ViT's residual stream gives them (PTS shifts, an outlier
  // channel in some rows), output scales as the converter makes them
  // (gamma / s_out up to ~60 steps per standard deviation), on the widths
  // of DeiT-T/S/B.
  std::mt19937_64 rng(7);
  for (int ch : {192, 384, 768}) {
    std::vector<uint8_t> alpha(static_cast<size_t>(ch));
    std::vector<int32_t> gamma(static_cast<size_t>(ch));
    std::vector<int64_t> beta(static_cast<size_t>(ch));
    const int g = 12;
    for (int c = 0; c < ch; ++c) {
      alpha[static_cast<size_t>(c)] = static_cast<uint8_t>(c % 17 == 0 ? 3 : c % 5 == 0 ? 1 : 0);
      const double gr = std::uniform_real_distribution<double>(-60.0, 60.0)(rng);
      const double br = std::uniform_real_distribution<double>(-40.0, 40.0)(rng) + 128.0;
      gamma[static_cast<size_t>(c)] = static_cast<int32_t>(std::llround(gr * (1 << g)));
      beta[static_cast<size_t>(c)] = std::llround(br * std::ldexp(1.0, 16 + g)) + (int64_t{1} << (15 + g));
    }
    vk::LayerNormParams p{};
    p.channels = ch;
    p.in = {-3, -32768, 32767, alpha.data()};
    p.eps_term = 1000;
    p.gamma = gamma.data();
    p.beta = beta.data();
    p.g_shift = g;
    int off = 0, count = 0;
    std::vector<int16_t> row(static_cast<size_t>(ch));
    std::vector<uint8_t> out(static_cast<size_t>(ch));
    for (int i = 0; i < 40; ++i) {
      const double spread = std::ldexp(1.0, 4 + i % 10);
      std::normal_distribution<double> nd(std::uniform_real_distribution<double>(-500.0, 500.0)(rng), spread);
      for (int c = 0; c < ch; ++c) row[static_cast<size_t>(c)] = static_cast<int16_t>(std::clamp(std::lround(nd(rng)), -4000L, 4000L));
      if (i % 3 == 0) row[static_cast<size_t>(ch / 3)] = 4000;  // a channel far out (x = 32024 with alpha 3)
      vk::layernorm_ref(1, row.data(), ch, p, out.data(), ch);
      double mean = 0, var = 0;
      std::vector<double> x(static_cast<size_t>(ch));
      for (int c = 0; c < ch; ++c) {
        x[static_cast<size_t>(c)] = double(row[static_cast<size_t>(c)] - p.in.zero_point) * (1 << alpha[static_cast<size_t>(c)]);
        mean += x[static_cast<size_t>(c)] / ch;
      }
      for (double v : x) var += (v - mean) * (v - mean) / ch;
      const double sd = std::sqrt(var + double(p.eps_term) / (double(ch) * ch));
      for (int c = 0; c < ch; ++c) {
        const auto k = static_cast<size_t>(c);
        const double want = std::clamp(std::floor((x[k] - mean) / sd * gamma[k] / (1 << g) + double(beta[k]) * std::ldexp(1.0, -16 - g)), 0.0, 255.0);
        CAPTURE(ch);
        CAPTURE(i);
        CAPTURE(c);
        REQUIRE(std::fabs(out[k] - want) <= 1.0);
        off += out[k] != want;
        ++count;
      }
    }
    CAPTURE(ch);
    CHECK(off < count / 20);  // off by one only next to a rounding boundary
  }
}

TEST_CASE("layernorm_stream_ref: the same rows onto an int16 stream, clamped to its range") {
  const int32_t gamma[2] = {3000, 3000};
  // beta = (-100 + 1/2) * 2^16: zero point -100 and round-half-up folded in.
  const int64_t beta[2] = {-99 * 65536 - 32768, -99 * 65536 - 32768};
  vk::LayerNormParams p = two_channels(gamma, beta);
  // x = {1, -1}: t = +-2^16, out = floor(+-3000 - 99.5) = 2900, -3100.
  const int16_t row[2] = {1, -1};
  int16_t out[2] = {};
  vk::layernorm_stream_ref(1, row, 2, p, -32768, 32767, out, 2);
  CHECK(out[0] == 2900);
  CHECK(out[1] == -3100);
  // The stream's range clamps; two rows ld_out apart, the gap untouched.
  const int16_t rows[4] = {1, -1, -1, 1};
  int16_t two[6] = {0, 0, 77, 0, 0, 77};
  vk::layernorm_stream_ref(2, rows, 2, p, -3000, 2000, two, 3);
  CHECK(two[0] == 2000);
  CHECK(two[1] == -3000);
  CHECK(two[2] == 77);
  CHECK(two[3] == -3000);
  CHECK(two[4] == 2000);
  CHECK(two[5] == 77);
}

TEST_CASE("residual_add_ref: two dyadic terms, clamped to the stream range") {
  const int32_t bias[2] = {1, 1};
  const int32_t half_m[2] = {kOne, kOne}, half_s[2] = {31, 31};  // * 0.5
  const int32_t one_m[2] = {kOne, kOne}, one_s[2] = {30, 30};    // * 1
  // v = zp_out + round((acc + bias) / 2) + (s - zp_in)
  const int32_t acc[2] = {3, -4};
  int16_t s[2] = {10, 20};
  vk::ResidualParams p{bias, 0, half_m, half_s, one_m, one_s, 5, 7, -32768, 32767};
  vk::residual_add_ref(1, 2, acc, 2, p, s, 2);
  CHECK(s[0] == 7 + 2 + 5);       // round(2) + (10 - 5)
  CHECK(s[1] == 7 + (-1) + 15);   // round(-1.5) = -1, + (20 - 5)
  // Clamping to [qmin, qmax].
  const int32_t big[2] = {100000, -100000};
  int16_t s2[2] = {0, 0};
  vk::ResidualParams clamp{bias, 0, one_m, one_s, nullptr, nullptr, 0, 0, -100, 100};
  vk::residual_add_ref(1, 2, big, 2, clamp, s2, 2);
  CHECK(s2[0] == 100);
  CHECK(s2[1] == -100);
  // 8-bit stream [0, 255].
  clamp.qmin_out = 0;
  clamp.qmax_out = 255;
  vk::residual_add_ref(1, 2, big, 2, clamp, s2, 2);
  CHECK(s2[0] == 255);
  CHECK(s2[1] == 0);
  // Per-row bias (bias_ld = n): row i uses bias[i * n].
  const int32_t acc2[4] = {0, 0, 0, 0};
  const int32_t row_bias[4] = {1, 2, 3, 4};
  int16_t s3[4] = {};
  vk::ResidualParams rows{row_bias, 2, one_m, one_s, nullptr, nullptr, 0, 10, -32768, 32767};
  vk::residual_add_ref(2, 2, acc2, 2, rows, s3, 2);
  CHECK(s3[0] == 11);
  CHECK(s3[1] == 12);
  CHECK(s3[2] == 13);
  CHECK(s3[3] == 14);
}

TEST_CASE("residual16_channels and residual_add16_ref: the branch in 16-bit steps onto the stream's own codes") {
  // Branch ratio 3/4 (3 * 2^29 * 2^-31): s = 1 (round(0.75 * 2^17) > 65535),
  // m = 0.75 * 2^16 - 2^15 = 2^14, b = bias + 1. The skip: the identity.
  const int32_t bias[2] = {0, 6}, bm[2] = {3 << 29, 3 << 29}, bs[2] = {31, 31};
  const int32_t im[2] = {kOne, kOne}, is[2] = {30, 30};
  vk::ResidualParams p{bias, 0, bm, bs, im, is, 7, 7, -32768, 32767};
  vk::ResidualChannels r;
  REQUIRE(vk::residual16_channels(2, p, &r));
  CHECK(r.in_shift == std::vector<int32_t>{1, 1});
  CHECK(r.mult == std::vector<int16_t>{1 << 14, 1 << 14});
  CHECK(r.bias == std::vector<int32_t>{1, 7});
  // t = floor((9 + 1) / 2) = 5, B = 5 + mulhrs(5, 2^14) = 5 + 3 (exact:
  // round(6.75) = 7); t = floor((-9 + 7) / 2) = -1, B = -1 + 0.
  const int32_t acc[4] = {9, -9, 200000, -200000};
  int16_t q[4] = {100, 100, 32000, -32000};
  vk::residual_add16_ref(2, 2, acc, 2, r.params(), q, 2);
  CHECK(q[0] == 108);
  CHECK(q[1] == 99);
  CHECK(q[2] == 32767);   // t = 100000 saturates to 32767, B and the sum saturate too
  CHECK(q[3] == -32768);  // t = -99997 saturates to -32768 first, B = -32768 + -16384 saturates too
  // Where it does not apply (the exact residual_add runs): a skip other than
  // the identity, zero points that differ, a narrower stream, no skip, a
  // branch ratio >= 1, a bias beyond 2^29.
  auto refused = [&](vk::ResidualParams v) { return !vk::residual16_channels(2, v, &r); };
  const int32_t half_s[2] = {31, 31}, one_s[2] = {30, 30}, big_bias[2] = {0, (1 << 29) + 1};
  vk::ResidualParams v = p;
  v.skip_shift = half_s;
  CHECK(refused(v));
  v = p;
  v.zp_out = 8;
  CHECK(refused(v));
  v = p;
  v.qmax_out = 32000;
  CHECK(refused(v));
  v = p;
  v.skip_mult = nullptr;
  CHECK(refused(v));
  v = p;
  v.branch_mult = im;
  v.branch_shift = one_s;
  CHECK(refused(v));
  v = p;
  v.bias = big_bias;
  CHECK(refused(v));
  v = p;
  v.bias_ld = 2;
  CHECK(refused(v));
}

TEST_CASE("residual_add16_ref: within two stream steps of residual_add_ref where nothing saturates") {
  std::mt19937_64 rng(77);
  auto draw = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const int n = 64, m = 50;
  std::vector<int32_t> bias(n), bm(n), bs(n), im(n, kOne), is(n, 30), acc(static_cast<size_t>(m) * n);
  std::vector<int16_t> q(static_cast<size_t>(m) * n);
  for (int j = 0; j < n; ++j) {
    bm[static_cast<size_t>(j)] = static_cast<int32_t>(draw(kOne, INT32_MAX));
    bs[static_cast<size_t>(j)] = static_cast<int32_t>(draw(31, 52));
    bias[static_cast<size_t>(j)] = static_cast<int32_t>(draw(-(1 << 20), 1 << 20));
  }
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const size_t at = static_cast<size_t>(i) * n + j;
      // A branch of up to 16000 stream steps, the stream within +-16000.
      const double ratio = std::ldexp(static_cast<double>(bm[static_cast<size_t>(j)]), -bs[static_cast<size_t>(j)]);
      const int64_t lim = std::min<int64_t>(static_cast<int64_t>(16000 / ratio), (int64_t{1} << 30));
      acc[at] = static_cast<int32_t>(draw(-lim, lim) - bias[static_cast<size_t>(j)]);
      q[at] = static_cast<int16_t>(draw(-16000, 16000));
    }
  const vk::ResidualParams p{bias.data(), 0, bm.data(), bs.data(), im.data(), is.data(), -3, -3, -32768, 32767};
  vk::ResidualChannels r;
  REQUIRE(vk::residual16_channels(n, p, &r));
  std::vector<int16_t> exact = q, fast = q;
  vk::residual_add_ref(m, n, acc.data(), n, p, exact.data(), n);
  vk::residual_add16_ref(m, n, acc.data(), n, r.params(), fast.data(), n);
  int worst = 0;
  for (size_t i = 0; i < exact.size(); ++i) worst = std::max(worst, std::abs(exact[i] - fast[i]));
  CHECK(worst <= 2);
  CHECK(worst >= 1);  // the two definitions do differ
}

TEST_CASE("requant_channels and requant_u8_ref: a ratio in 16-bit steps, zero point and clamp") {
  // Ratio 1/2 (2^30 * 2^-31): r = 0 (m = 2^14 with s = 0; r = 1 would need
  // 2^15), s = 0, so v = mulhrs(acc + bias, 2^14) = round half up of the half.
  // Ratio 2^-10 (2^30 * 2^-40): r = 6 (m = 2^(15 + 6 - 10) = 2^11 with s = 0),
  // then s = 3 (m = 2^14): t = (acc + bias + 4) >> 3, v = t / 2 rounded,
  // out = zp + ((v + 32) >> 6).
  const int32_t mult[2] = {kOne, kOne}, shift[2] = {31, 40}, bias[2] = {2, -3};
  const vk::RequantChannels q = vk::requant_channels(2, bias, mult, shift);
  CHECK(q.out_shift[0] == 0);
  CHECK(q.in_shift[0] == 0);
  CHECK(q.mult[0] == 16384);
  CHECK(q.bias[0] == 2);
  CHECK(q.out_shift[1] == 6);
  CHECK(q.in_shift[1] == 3);
  CHECK(q.mult[1] == 16384);
  CHECK(q.bias[1] == -3 + 4);
  const uint8_t zp[2] = {128, 10};
  const vk::RequantU8Params p = q.params(zp);
  auto run = [&](int32_t a0, int32_t a1) {
    const int32_t acc[2] = {a0, a1};
    uint8_t out[2] = {};
    vk::requant_u8_ref(1, 2, acc, 2, p, out, 2);
    return std::array<int, 2>{out[0], out[1]};
  };
  CHECK(run(5, 0)[0] == 128 + 4);      // (5 + 2) / 2 = 3.5 -> 4
  CHECK(run(-9, 0)[0] == 128 - 3);     // -3.5 -> -3 (half up)
  CHECK(run(300, 0)[0] == 255);        // 128 + 151 clamps
  CHECK(run(-300, 0)[0] == 0);
  CHECK(run(0, 1027)[1] == 10 + 1);    // 1024 / 1024 = 1
  CHECK(run(0, 102400 + 3)[1] == 10 + 100);
  CHECK(run(0, 2560 + 3 - 512)[1] == 10 + 2);  // 2048 / 1024 = 2
  CHECK(run(0, 2560 + 3 - 513)[1] == 10 + 2);  // 2047 / 1024 rounds to 2
  CHECK(run(0, -1000000)[1] == 0);
  CHECK(run(0, 1 << 30)[1] == 255);    // t saturates at 2^15 - 1 with the output
  // Ratios >= 1 are not representable.
  CHECK(vk::requant_ratio_ok(INT32_MAX, 31));
  CHECK_FALSE(vk::requant_ratio_ok(kOne, 30));
  CHECK(vk::requant_ratio_ok(kOne, 62));
  CHECK_FALSE(vk::requant_ratio_ok(3, 1));
}

TEST_CASE("softmax references on two-element rows") {
  // Two equal logits: e = kExpC each, sum 47606, R = 44933 at s = 7,
  // p = ((kExpC * 44933 >> 16) + 64) >> 7 = (16319 + 64) >> 7 = 127 (127.5
  // less the reciprocal's truncation). Second row: one logit far below (y
  // clamped, nz = 16384, e = 0): sum kExpC, R = 44933 at s = 6,
  // p = {(16319 + 32) >> 6 = 255, 0}.
  const int32_t acc[4] = {50, 50, 0, -1000000};
  const int32_t colsum[2] = {0, 0};
  const vk::SoftmaxParams p{2, 2, colsum, 0, 16384, -1};  // nz = -(logit - max)
  uint8_t probs[4] = {};
  int32_t sum[2] = {};
  vk::softmax_u8_ref(acc, 2, p, probs, 2, sum);
  CHECK(probs[0] == 127);
  CHECK(probs[1] == 127);
  CHECK(sum[0] == 254);
  CHECK(probs[2] == 255);
  CHECK(probs[3] == 0);
  CHECK(sum[1] == 255);
  // LIS: ratio 2 -> code 1 -> weight 2^13; ratio 1 -> 2^14; e = 0 -> 0.
  int16_t w[4] = {};
  vk::softmax_lis_ref(acc, 2, p, w, 2, sum);
  CHECK(w[0] == 8192);
  CHECK(w[1] == 8192);
  CHECK(sum[0] == 16384);
  CHECK(w[2] == 16384);
  CHECK(w[3] == 0);
  CHECK(sum[1] == 16384);
  // zq * colsum_k is subtracted per column: acc {0, 30} with zq = 3 and
  // colsum {0, 10} are equal logits.
  const int32_t acc2[2] = {0, 30};
  const int32_t colsum2[2] = {0, 10};
  const vk::SoftmaxParams p2{1, 2, colsum2, 3, 16384, -1};
  vk::softmax_u8_ref(acc2, 2, p2, probs, 2, sum);
  CHECK(probs[0] == 127);
  CHECK(probs[1] == 127);
}

TEST_CASE("attn_kv_s8_ref: keys and values as x - 128, column sums of the keys") {
  // Two tokens of three values, rows 4 bytes apart (the 4th byte is not read).
  const uint8_t k[8] = {0, 128, 255, 9, 1, 2, 3, 9};
  const uint8_t v[8] = {255, 0, 130, 9, 128, 127, 129, 9};
  int8_t ks[6], vs[6];
  int32_t colsum[2];
  vitint::kernels::attn_kv_s8_ref(2, 3, k, v, 4, ks, vs, colsum);
  CHECK(ks[0] == -128);
  CHECK(ks[1] == 0);
  CHECK(ks[2] == 127);
  CHECK(vs[0] == 127);
  CHECK(vs[1] == -128);
  CHECK(vs[5] == 1);
  CHECK(colsum[0] == -1);
  CHECK(colsum[1] == 6 - 3 * 128);
}

TEST_CASE("attn_row_sub and requant_u8_ref's row_sub: zero point of V out") {
  // Row 0: weights summing to 2^14 + 2^13 (rowsum), zv = 3: acc - 3 * rowsum
  // before the requantization (here a half, zero point 0, bias 10).
  const int32_t acc[2][3] = {{100000, 73740, 0}, {7, 8, 9}};
  int32_t rowsum[2] = {(1 << 14) + (1 << 13), 0};
  vitint::kernels::attn_row_sub(2, 3, rowsum);
  CHECK(rowsum[0] == 3 * 24576);
  CHECK(rowsum[1] == 0);
  const int32_t bias[3] = {10, 10, 10}, mult[3] = {kOne, kOne, kOne}, shift[3] = {31, 31, 31};
  const uint8_t zp[3] = {0, 0, 0};
  const vk::RequantChannels q = vk::requant_channels(3, bias, mult, shift);
  uint8_t out[2][3] = {};
  vitint::kernels::requant_u8_ref(2, 3, &acc[0][0], 3, q.params(zp, rowsum), &out[0][0], 3);
  CHECK(out[0][0] == 255);  // (100000 - 73728 + 10) / 2 clamps
  CHECK(out[0][1] == 11);   // (73740 - 73728 + 10) / 2
  CHECK(out[0][2] == 0);    // negative clamps
  CHECK(out[1][2] == 10);   // (9 + 10) / 2 = 9.5 -> 10
  // The subtraction wraps like the int32 accumulators it corrects.
  int32_t big[1] = {static_cast<int32_t>(0x80000000u)};
  vitint::kernels::attn_row_sub(1, -1, big);
  CHECK(big[0] == INT32_MIN);
}

TEST_CASE("attn_lis_rescale_ref: zero point of V out, LIS rows rescaled to 2^14") {
  // r = floor((2^30 + 12288) / 24576) = 43691; ((x - zv rowsum) * r + 2^15) >> 16
  // rescales a row summing to 1.5 * 2^14 by 2/3; a zero row sum gives 0.
  const int32_t rowsum[2] = {(1 << 14) + (1 << 13), 0};
  int32_t b[2][2] = {{24576 * 10 + 3, -24576 * 10}, {5, 6}};
  vitint::kernels::attn_lis_rescale_ref(2, 2, &b[0][0], 2, 1, rowsum);
  CHECK(b[0][0] == static_cast<int32_t>((int64_t{24576 * 9 + 3} * 43691 + 32768) >> 16));
  CHECK(b[0][0] == 147459);  // 221187 * 2/3 = 147458, up by rounding of r
  CHECK(b[0][1] == static_cast<int32_t>((int64_t{-24576 * 11} * 43691 + 32768) >> 16));
  CHECK(b[1][0] == 0);
  CHECK(b[1][1] == 0);
}

TEST_CASE("gelu_spline: the lines through the table's knots, bounds enforced") {
  auto mulhrs = [](int32_t a, int32_t b) { return (a * b + (1 << 14)) >> 15; };
  for (const std::vector<int16_t>& t : {vk::gelu_table(), vk::quick_gelu_table()}) {
    auto at = [&t](int x) { return int32_t{t[static_cast<size_t>(x + 32768)]}; };
    vk::GeluSpline s{};
    REQUIRE(vk::gelu_spline(t.data(), &s));
    for (int j = 0; j < vk::kGeluPieces; ++j) {
      CAPTURE(j);
      CHECK(s.c0[j] == at(-128 * j));
      CHECK(s.c1[j] == at(-128 * j - 128) - at(-128 * j));
    }
    CHECK(s.c0[0] == 0);  // f(0) = 0
    // Between the knots the spline (quant.h's y, in 2^-13 units) stays within
    // 2.5 * 2^-10 of the table (the line's own error is below 1.7 * 2^-10).
    int worst = 0;
    for (int a = 0; a < 4096; ++a) {
      const int j = a >> 7, u = (a & 127) << 8;  // a in 2^-10 units: 4 a in 2^-12
      worst = std::max(worst, std::abs(8 * s.c0[j] + mulhrs(u, 8 * s.c1[j]) - 8 * at(-a)));
    }
    CHECK(worst <= 20);
    CHECK(worst >= 8);  // coarser than a quadratic would be
  }
  const std::vector<int16_t> t = vk::gelu_table();
  CHECK(t[32768 - 4096] == 0);  // the last knot: GELU(-4) rounds to 0
  // Tables whose knots leave the bounds are refused.
  vk::GeluSpline s{};
  std::vector<int16_t> bad = t;
  bad[32768 - 128 * 5] = 2048;  // |T0| < 2^11 fails at a knot
  CHECK_FALSE(vk::gelu_spline(bad.data(), &s));
  bad = t;
  bad[32768 - 128] = 200;  // a slope of more than 127 per piece
  CHECK_FALSE(vk::gelu_spline(bad.data(), &s));
}

TEST_CASE("gelu_channels: the 16-bit steps of the file's two dyadics, by hand") {
  // acc -> 2^-10 units: 2^-4 (mult 2^30, shift 34); 2^-10 units -> output:
  // 2^-6 (2^30, 36); zp 20. The output saturates from g = 235.5 / 2^-6 2^-10
  // units (14.7 real): e = 0 is the finest input that holds it below 2^14
  // (e = -1 would need 2^15). Then s = 3, m = 2^14 (x = ((acc + bias) >> 3) /
  // 2) and r = 5, om = 2^14 (om / 2^20 = 2^-6).
  const int32_t mult[3] = {kOne, kOne, kOne}, shift[3] = {34, 34, 34};
  const int32_t out_mult[3] = {kOne, kOne, 0}, out_shift[3] = {36, 26, 36};
  const uint8_t zp[3] = {20, 20, 20};
  const int32_t bias[3] = {5, -7, 0};
  const vk::GeluChannels g = vk::gelu_channels(3, bias, mult, shift, out_mult, out_shift, zp);
  CHECK(g.frac_cut[0] == 0);
  CHECK(g.in_shift[0] == 3);
  CHECK(g.bias[0] == 5 + 4);  // the rounding term of >> 3
  CHECK(g.in_mult[0] == 16384);
  CHECK(g.out_shift[0] == 5);
  CHECK(g.out_mult[0] == 16384);
  // A narrow output (16 steps per 2^-10 unit: a channel that is nearly
  // constant): the finest input, e = -2 (x = ((acc + bias) >> 1) / 2 in
  // 2^-12 units); om = 16 * 2^(15 - 2) does not fit 15 bits even with r = 0
  // and is clamped.
  CHECK(g.frac_cut[1] == -2);
  CHECK(g.in_shift[1] == 1);
  CHECK(g.bias[1] == -7 + 1);
  CHECK(g.in_mult[1] == 16384);
  CHECK(g.out_shift[1] == 0);
  CHECK(g.out_mult[1] == 32767);
  // out_mult 0: the output is zp whatever x is; e = 7 (nothing saturates),
  // s = 10 (m = 2^30 / 2^34 * 2^(15 + 10 - 7) = 2^14).
  CHECK(g.frac_cut[2] == 7);
  CHECK(g.in_shift[2] == 10);
  CHECK(g.bias[2] == 512);
  CHECK(g.out_mult[2] == 0);
}

TEST_CASE("gelu_u8_ref: GELU and QuickGELU to within one output step of the real function") {
  // The channel of the test above: x = (acc + bias) / 16 in 2^-10 units,
  // out = 20 + g / 16 (output step 2^-4): inputs from -8 to 15 (real).
  const int32_t mult[1] = {kOne}, shift[1] = {34}, out_mult[1] = {kOne}, out_shift[1] = {36};
  const uint8_t zp[1] = {20};
  const int32_t bias[1] = {5};
  const vk::GeluChannels ch = vk::gelu_channels(1, bias, mult, shift, out_mult, out_shift, zp);
  struct Act {
    std::vector<int16_t> table;
    double (*f)(double);
  } acts[] = {{vk::gelu_table(), [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }},
              {vk::quick_gelu_table(), [](double x) { return x / (1.0 + std::exp(-1.702 * x)); }}};
  for (const Act& a : acts) {
    vk::GeluSpline sp{};
    REQUIRE(vk::gelu_spline(a.table.data(), &sp));
    const vk::GeluU8Params p = ch.params(zp, &sp);
    int off = 0, count = 0;
    for (int32_t acc = -8 * 16384; acc <= 15 * 16384; acc += 7) {
      uint8_t out = 0;
      vk::gelu_u8_ref(1, 1, &acc, 1, p, &out, 1);
      const double x = (acc + bias[0]) / 16384.0;
      const double want = std::clamp(std::round(20.0 + a.f(x) * 16.0), 0.0, 255.0);
      CAPTURE(acc);
      REQUIRE(std::fabs(out - want) <= 1.0);
      off += out != want;
      ++count;
    }
    CHECK(off < count / 20);  // off by one only next to a rounding boundary (~3%)
  }
}
