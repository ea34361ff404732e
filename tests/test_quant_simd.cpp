// Every supported path of the dispatched elementwise kernels
// (quant_dispatch.h) against the normative *_ref functions, bit for bit, on
// awkward sizes, random data and edge values. Inputs stay where the
// reference is defined (no int32 overflow inside it); within that, they
// reach the limits: 33-bit acc + bias sums, logits spanning more than
// int32, shifts 0..62, multipliers 0 and 2^31 - 1, sigma = 0 rows, zero
// points at the ends of their ranges.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "isas.h"
#include "kernels/quant_internal.h"
#include "vitint/kernels/quant.h"
#include "vitint/kernels/quant_dispatch.h"

namespace vk = vitint::kernels;

namespace {

using vitint::test::supported_isas;

const int kSizes[] = {1, 15, 16, 17, 31, 32, 33, 64, 197, 384, 768, 3072};

using Rng = std::mt19937_64;

int64_t uniform(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

// A dyadic multiplier: mostly realistic (mult in [2^30, 2^31)), sometimes
// 0, 1 or 2^31 - 1, with any shift 0..62.
vk::Dyadic draw_dyadic(Rng& rng) {
  vk::Dyadic d;
  const int kind = static_cast<int>(uniform(rng, 0, 9));
  d.mult = kind == 0 ? 0 : kind == 1 ? INT32_MAX : kind == 2 ? 1 : static_cast<int32_t>(uniform(rng, 1 << 30, INT32_MAX));
  const int sk = static_cast<int>(uniform(rng, 0, 5));
  d.shift = sk == 0 ? 0 : sk == 1 ? 62 : static_cast<int32_t>(uniform(rng, 0, 62));
  return d;
}

// Largest |x| whose dyadic result stays within +-budget (the reference's
// int32 sums then cannot overflow) and for which apply_dyadic's contract
// holds (|x * mult| + 2^(shift-1) < 2^63), capped at 2^32.
int64_t x_limit(const vk::Dyadic& d, double budget) {
  if (d.mult == 0) return int64_t{1} << 32;
  const long double rnd = d.shift == 0 ? 0.0L : std::ldexp(1.0L, d.shift - 1);
  const long double lim = std::min(static_cast<long double>(budget) * std::ldexp(1.0L, d.shift) / d.mult,
                                   (std::ldexp(1.0L, 63) - rnd - 1) / d.mult);
  return lim >= 4294967296.0L ? int64_t{1} << 32 : static_cast<int64_t>(lim);
}

// A value in [-lim, lim] (clamped to [lo, hi]): uniform, small, or near an end.
int64_t draw_in(Rng& rng, int64_t lim, int64_t lo = INT32_MIN, int64_t hi = INT32_MAX) {
  int64_t v = 0;
  switch (uniform(rng, 0, 3)) {
    case 0: v = uniform(rng, -lim, lim); break;
    case 1: v = uniform(rng, -std::min<int64_t>(lim, 300), std::min<int64_t>(lim, 300)); break;
    case 2: v = lim - uniform(rng, 0, std::min<int64_t>(lim, 3)); break;
    default: v = -lim + uniform(rng, 0, std::min<int64_t>(lim, 3)); break;
  }
  return std::clamp(v, lo, hi);
}

template <class T>
std::string first_diff(const std::vector<T>& got, const std::vector<T>& want, int ld, const char* what) {
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i]) {
      std::ostringstream os;
      os << what << " differs first at row " << i / static_cast<size_t>(ld) << " col " << i % static_cast<size_t>(ld)
         << ": got " << static_cast<int64_t>(got[i]) << ", want " << static_cast<int64_t>(want[i]);
      return os.str();
    }
  return "";
}

#define EXPECT_SAME(got, want, ld, what, ctx)                          \
  do {                                                                 \
    const std::string d_ = first_diff(got, want, ld, what);            \
    if (!d_.empty()) FAIL_CHECK(ctx << ": " << d_);                    \
  } while (0)

std::string ctx_of(vk::Isa isa, const char* kernel, int rows, int cols, int trial) {
  std::ostringstream os;
  os << kernel << " isa=" << vk::isa_name(isa) << " rows=" << rows << " cols=" << cols << " trial=" << trial;
  return os.str();
}

// An accumulator for which (acc + bias) >> s is t (t clamped to where
// |acc + bias| < 2^31, the contract, and acc to +-2^30).
int32_t acc_for(Rng& rng, int64_t t, int s, int64_t bias) {
  const int64_t lim = (int64_t{1} << 31) - 1;
  const int64_t sum = std::clamp<int64_t>(t * (int64_t{1} << s) + uniform(rng, 0, (int64_t{1} << s) - 1), -lim, lim);
  return static_cast<int32_t>(std::clamp<int64_t>(sum - bias, -(int64_t{1} << 30), (int64_t{1} << 30) - 1));
}

// t aimed at its int16 limits and past them (kind 0), small (1), or
// anything (2 and up); without a kind, one drawn from 0..3.
int64_t draw_t(Rng& rng, int64_t kind) {
  switch (kind) {
    case 0: return uniform(rng, 0, 1) ? 32767 + uniform(rng, -1, 2) : -32768 + uniform(rng, -2, 1);
    case 1: return uniform(rng, -300, 300);
    default: return uniform(rng, -40000, 40000);
  }
}
int64_t draw_t(Rng& rng) { return draw_t(rng, uniform(rng, 0, 3)); }

// ---------------------------------------------------------------------------
// requant_u8

struct RequantCase {
  int m, n, ld_acc, ld_out;
  std::vector<int32_t> acc, bias, in_shift;
  std::vector<int16_t> mult, out_shift;
  std::vector<uint8_t> zp;
  std::vector<int32_t> row_sub;  // empty: none
};

// Per-column numbers over their whole ranges (not only what
// requant_channels makes: r up to 15), biases in [-2^30, 2^30] and
// a = acc - row_sub with |a + b| < 2^31 (the contract), aimed at t's int16
// limits and past them, small t and anything. Flavour 1 adds a row_sub of
// any int32 (acc = a + row_sub wraps around int32).
RequantCase make_requant(Rng& rng, int m, int n, int flavour) {
  RequantCase c{m, n, n + 3, n + 5, {}, {}, {}, {}, {}, {}, {}};
  for (int j = 0; j < n; ++j) {
    const int sk = static_cast<int>(uniform(rng, 0, 5));
    c.in_shift.push_back(sk == 0 ? 0 : sk == 1 ? 30 : static_cast<int32_t>(uniform(rng, 0, 20)));
    const int mk = static_cast<int>(uniform(rng, 0, 5));
    c.mult.push_back(static_cast<int16_t>(mk == 0 ? 0 : mk == 1 ? 32767 : uniform(rng, 1 << 14, 32767)));
    const int rk = static_cast<int>(uniform(rng, 0, 5));
    c.out_shift.push_back(static_cast<int16_t>(rk == 0 ? 0 : rk == 1 ? 15 : uniform(rng, 0, 7)));
    const int zk = static_cast<int>(uniform(rng, 0, 3));
    c.zp.push_back(static_cast<uint8_t>(zk == 0 ? 0 : zk == 1 ? 255 : uniform(rng, 0, 255)));
    c.bias.push_back(static_cast<int32_t>(draw_in(rng, int64_t{1} << 30)));
  }
  if (flavour == 1)
    for (int i = 0; i < m; ++i) c.row_sub.push_back(static_cast<int32_t>(uniform(rng, INT32_MIN, INT32_MAX)));
  c.acc.resize(static_cast<size_t>(m) * c.ld_acc, 0x7777);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const size_t jj = static_cast<size_t>(j);
      const int32_t a = acc_for(rng, draw_t(rng), c.in_shift[jj], c.bias[jj]);
      const uint32_t sub = c.row_sub.empty() ? 0 : static_cast<uint32_t>(c.row_sub[static_cast<size_t>(i)]);
      c.acc[static_cast<size_t>(i) * c.ld_acc + j] = static_cast<int32_t>(static_cast<uint32_t>(a) + sub);
    }
  return c;
}

std::vector<uint8_t> run_requant(vk::Isa isa, const RequantCase& c) {
  std::vector<uint8_t> out(static_cast<size_t>(c.m) * c.ld_out, 0xA5);
  const vk::RequantU8Params p{c.bias.data(), c.in_shift.data(), c.mult.data(), c.out_shift.data(), c.zp.data(),
                              c.row_sub.empty() ? nullptr : c.row_sub.data()};
  if (isa == vk::Isa::kRef) {
    vk::requant_u8_ref(c.m, c.n, c.acc.data(), c.ld_acc, p, out.data(), c.ld_out);
  } else {
    vk::requant_u8(isa, c.m, c.n, c.acc.data(), c.ld_acc, p, out.data(), c.ld_out);
  }
  return out;
}

// ---------------------------------------------------------------------------
// gelu_u8

// Splines: GELU's and QuickGELU's (as the converter's tables give them),
// and one with every coefficient at a bound of gelu_spline's (|c0| = 2047,
// |c1| = 127, random signs), so that every int16 product and sum
// of the definition reaches its limit.
std::vector<vk::GeluSpline> test_splines() {
  std::vector<vk::GeluSpline> v(3);
  REQUIRE(vk::gelu_spline(vk::gelu_table().data(), &v[0]));
  REQUIRE(vk::gelu_spline(vk::quick_gelu_table().data(), &v[1]));
  Rng rng(56);
  for (int j = 0; j < vk::kGeluPieces; ++j) {
    v[2].c0[j] = static_cast<int16_t>(uniform(rng, 0, 1) ? 2047 : -2047);
    v[2].c1[j] = static_cast<int16_t>(uniform(rng, 0, 1) ? 127 : -127);
  }
  return v;
}

// Per-channel numbers drawn over their whole ranges (not only what
// gelu_channels makes), biases in [-2^30, 2^30] and accumulators with
// |acc + bias| < 2^31 (the contract), aimed at the definition's edges: t at
// and past the int16 limits, x at 0, +-1 and at the cap 2^(12-e) - 1 and
// around it, |x| on piece boundaries, and anything.
struct GeluCase {
  int m, n, ld_acc, ld_out;
  std::vector<int32_t> acc, bias, in_shift;
  std::vector<int16_t> in_mult, frac_cut, out_mult, out_shift;
  std::vector<uint8_t> zp;
  vk::GeluU8Params params(const vk::GeluSpline& sp) const {
    return {bias.data(), in_shift.data(), in_mult.data(), frac_cut.data(), out_mult.data(), out_shift.data(), zp.data(), &sp};
  }
};

GeluCase make_gelu(Rng& rng, int m, int n) {
  GeluCase c{m, n, n + 3, n + 5, {}, {}, {}, {}, {}, {}, {}, {}};
  auto pick16 = [&](int64_t lo, int64_t hi) {
    const int k = static_cast<int>(uniform(rng, 0, 5));
    return static_cast<int16_t>(k == 0 ? lo : k == 1 ? hi : uniform(rng, lo, hi));
  };
  for (int j = 0; j < n; ++j) {
    const int sk = static_cast<int>(uniform(rng, 0, 5));
    c.in_shift.push_back(sk == 0 ? 0 : sk == 1 ? 31 : static_cast<int32_t>(uniform(rng, 0, 20)));
    const int mk = static_cast<int>(uniform(rng, 0, 5));
    c.in_mult.push_back(static_cast<int16_t>(mk == 0 ? 0 : mk == 1 ? 32767 : uniform(rng, 1 << 14, 32767)));
    c.frac_cut.push_back(pick16(-2, 7));
    c.out_mult.push_back(static_cast<int16_t>(mk == 2 ? 0 : uniform(rng, 1 << 14, 32767)));
    c.out_shift.push_back(pick16(0, 15));
    const int zk = static_cast<int>(uniform(rng, 0, 3));
    c.zp.push_back(static_cast<uint8_t>(zk == 0 ? 0 : zk == 1 ? 255 : uniform(rng, 0, 255)));
    c.bias.push_back(static_cast<int32_t>(draw_in(rng, int64_t{1} << 30)));
  }
  c.acc.resize(static_cast<size_t>(m) * c.ld_acc, 0x7777);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const size_t jj = static_cast<size_t>(j);
      const int s = c.in_shift[jj], e = c.frac_cut[jj];
      const int64_t bias = c.bias[jj], mult = c.in_mult[jj];
      // t = (acc + bias) >> s aimed at: its int16 limits or past them, or a
      // value whose x = mulhrs(t, m) is a chosen edge.
      const int64_t kind = uniform(rng, 0, 3);
      int64_t t;
      if (kind == 1) {
        const int64_t cap = (int64_t{1} << (12 - e)) - 1;
        const int64_t edges[] = {0, 1, -1, cap, cap + 1, cap - 1, -cap, -cap - 1, -cap + 1,
                                 (uniform(rng, 0, 31) << (7 - std::min(e, 7))) + uniform(rng, -1, 1)};
        const int64_t x = edges[uniform(rng, 0, 9)] * (uniform(rng, 0, 1) ? 1 : -1);
        t = mult == 0 ? x : (x * 32768 + mult / 2) / mult;
      } else {
        t = draw_t(rng, kind == 0 ? 0 : kind - 1);  // the limits, small, anything
      }
      c.acc[static_cast<size_t>(i) * c.ld_acc + j] = acc_for(rng, t, s, bias);
    }
  return c;
}

std::vector<uint8_t> run_gelu(vk::Isa isa, const GeluCase& c, const vk::GeluSpline& sp) {
  std::vector<uint8_t> out(static_cast<size_t>(c.m) * c.ld_out, 0xA5);
  if (isa == vk::Isa::kRef) {
    vk::gelu_u8_ref(c.m, c.n, c.acc.data(), c.ld_acc, c.params(sp), out.data(), c.ld_out);
  } else {
    vk::gelu_u8(isa, c.m, c.n, c.acc.data(), c.ld_acc, c.params(sp), out.data(), c.ld_out);
  }
  return out;
}

// ---------------------------------------------------------------------------
// residual_add

struct ResidualCase {
  int m, n, ld_acc, ld_s;
  std::vector<int32_t> acc, bias, bm, bs, sm, ss;
  std::vector<int16_t> stream;
  vk::ResidualParams p;
};

ResidualCase make_residual(Rng& rng, int m, int n, int flavour) {
  ResidualCase c{m, n, n + 1, n + 2, {}, {}, {}, {}, {}, {}, {}, {}};
  const bool skip = flavour != 1;
  const bool row_bias = flavour == 2;
  const bool sixteen = flavour != 3;  // 8-bit stream otherwise
  c.p.qmin_out = sixteen ? -32768 : 0;
  c.p.qmax_out = sixteen ? 32767 : 255;
  if (uniform(rng, 0, 2) == 0) {  // narrower clamp range
    c.p.qmin_out += static_cast<int32_t>(uniform(rng, 0, 20));
    c.p.qmax_out -= static_cast<int32_t>(uniform(rng, 0, 20));
  }
  const int zk = static_cast<int>(uniform(rng, 0, 4));
  c.p.zp_in = zk == 0 ? c.p.qmin_out : zk == 1 ? c.p.qmax_out : static_cast<int32_t>(uniform(rng, c.p.qmin_out, c.p.qmax_out));
  if (flavour == 4) c.p.zp_in = (uniform(rng, 0, 1) ? 1 : -1) * static_cast<int32_t>(uniform(rng, 1 << 30, INT32_MAX - 40000));
  c.p.zp_out = static_cast<int32_t>(uniform(rng, c.p.qmin_out, c.p.qmax_out));
  std::vector<int64_t> lim_b(static_cast<size_t>(n)), lim_s(static_cast<size_t>(n));
  for (int j = 0; j < n; ++j) {
    vk::Dyadic d = draw_dyadic(rng);
    c.bm.push_back(d.mult);
    c.bs.push_back(d.shift);
    lim_b[static_cast<size_t>(j)] = x_limit(d, 536870912.0);
    d = draw_dyadic(rng);
    c.sm.push_back(d.mult);
    c.ss.push_back(d.shift);
    lim_s[static_cast<size_t>(j)] = x_limit(d, 536870912.0);
  }
  // Per-row bias rows are n + 3 apart (padding that must not be read as bias).
  const int brows = row_bias ? m : 1;
  const int bias_ld = row_bias ? n + 3 : 0;
  for (int i = 0; i < brows; ++i) {
    for (int j = 0; j < n; ++j)
      c.bias.push_back(static_cast<int32_t>(draw_in(rng, std::min<int64_t>(lim_b[static_cast<size_t>(j)] / 2, INT32_MAX))));
    if (row_bias) c.bias.insert(c.bias.end(), 3, INT32_MAX);
  }
  c.acc.assign(static_cast<size_t>(m) * c.ld_acc, 0x1234);
  c.stream.assign(static_cast<size_t>(m) * c.ld_s, int16_t{0x2222});
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const int64_t lb = std::min<int64_t>(lim_b[static_cast<size_t>(j)] / 2, INT32_MAX);
      c.acc[static_cast<size_t>(i) * c.ld_acc + j] = static_cast<int32_t>(draw_in(rng, lb));
      // skip input: s - zp_in within the column's limit.
      const int64_t ls = lim_s[static_cast<size_t>(j)];
      const int64_t s = std::clamp<int64_t>(c.p.zp_in + draw_in(rng, ls, -70000, 70000), -32768, 32767);
      if (!skip || std::llabs(s - c.p.zp_in) <= ls) c.stream[static_cast<size_t>(i) * c.ld_s + j] = static_cast<int16_t>(s);
      else c.stream[static_cast<size_t>(i) * c.ld_s + j] = static_cast<int16_t>(std::clamp<int64_t>(c.p.zp_in, -32768, 32767));
    }
  if (flavour == 4) {  // zp_in far away: keep the skip term tiny
    for (int j = 0; j < n; ++j) {
      c.sm[static_cast<size_t>(j)] = 1 << 30;
      c.ss[static_cast<size_t>(j)] = 62;
    }
  }
  c.p.bias_ld = bias_ld;
  return c;
}

std::vector<int16_t> run_residual(vk::Isa isa, ResidualCase c) {
  c.p.bias = c.bias.data();
  c.p.branch_mult = c.bm.data();
  c.p.branch_shift = c.bs.data();
  const bool skip = !c.sm.empty();
  c.p.skip_mult = skip ? c.sm.data() : nullptr;
  c.p.skip_shift = skip ? c.ss.data() : nullptr;
  std::vector<int16_t> s = c.stream;
  if (isa == vk::Isa::kRef) {
    vk::residual_add_ref(c.m, c.n, c.acc.data(), c.ld_acc, c.p, s.data(), c.ld_s);
  } else {
    vk::residual_add(isa, c.m, c.n, c.acc.data(), c.ld_acc, c.p, s.data(), c.ld_s);
  }
  return s;
}

// ---------------------------------------------------------------------------
// residual_add16

// Per-column numbers over the kernels' whole ranges (s 0..30, m in
// [-32767, 32767]), biases in [-2^30, 2^30], t at and past its int16 limits,
// stream codes at int16's ends and anywhere, so that every saturation of the
// definition happens.
struct Residual16Case {
  int m, n, ld_acc, ld_s;
  std::vector<int32_t> acc, bias, in_shift;
  std::vector<int16_t> mult, stream;
  vk::Residual16Params params() const { return {bias.data(), in_shift.data(), mult.data()}; }
};

Residual16Case make_residual16(Rng& rng, int m, int n) {
  Residual16Case c{m, n, n + 3, n + 5, {}, {}, {}, {}, {}};
  for (int j = 0; j < n; ++j) {
    const int sk = static_cast<int>(uniform(rng, 0, 5));
    c.in_shift.push_back(sk == 0 ? 0 : sk == 1 ? 30 : static_cast<int32_t>(uniform(rng, 0, 20)));
    const int mk = static_cast<int>(uniform(rng, 0, 5));
    c.mult.push_back(static_cast<int16_t>(mk == 0 ? -32767 : mk == 1 ? 32767 : mk == 2 ? 0 : uniform(rng, -32767, 32767)));
    c.bias.push_back(static_cast<int32_t>(draw_in(rng, int64_t{1} << 30)));
  }
  c.acc.resize(static_cast<size_t>(m) * c.ld_acc, 0x7777);
  c.stream.resize(static_cast<size_t>(m) * c.ld_s, int16_t{0x2222});
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      const size_t jj = static_cast<size_t>(j);
      c.acc[static_cast<size_t>(i) * c.ld_acc + j] = acc_for(rng, draw_t(rng), c.in_shift[jj], c.bias[jj]);
      c.stream[static_cast<size_t>(i) * c.ld_s + j] = static_cast<int16_t>(draw_in(rng, 32767, -32768, 32767));
    }
  return c;
}

std::vector<int16_t> run_residual16(vk::Isa isa, const Residual16Case& c) {
  std::vector<int16_t> s = c.stream;
  if (isa == vk::Isa::kRef) {
    vk::residual_add16_ref(c.m, c.n, c.acc.data(), c.ld_acc, c.params(), s.data(), c.ld_s);
  } else {
    vk::residual_add16(isa, c.m, c.n, c.acc.data(), c.ld_acc, c.params(), s.data(), c.ld_s);
  }
  return s;
}

// ---------------------------------------------------------------------------
// layernorm

struct NormCase {
  int rows, c, ld_in, ld_out;
  std::vector<int16_t> in;
  std::vector<uint8_t> alpha;
  std::vector<int32_t> gamma;
  std::vector<int64_t> beta;
  vk::LayerNormParams p;
};

NormCase make_norm(Rng& rng, int rows, int ch, int flavour) {
  NormCase n{rows, ch, ch + 7, ch + 9, {}, {}, {}, {}, {}};
  n.p.channels = ch;
  const bool sixteen = flavour % 2 == 0;
  n.p.in.qmin = sixteen ? -32768 : 0;
  n.p.in.qmax = sixteen ? 32767 : 255;
  const int zk = static_cast<int>(uniform(rng, 0, 3));
  n.p.in.zero_point = zk == 0 ? n.p.in.qmin : zk == 1 ? n.p.in.qmax : static_cast<int32_t>(uniform(rng, n.p.in.qmin, n.p.in.qmax));
  // Outside int16 (the vector kernels fall back to the reference), within
  // the reference's contract for 3072 channels (|x| < 2^19.6).
  if (flavour == 5) n.p.in.zero_point = static_cast<int32_t>(uniform(rng, 40000, 100000));
  for (int c = 0; c < ch; ++c) n.alpha.push_back(static_cast<uint8_t>(uniform(rng, 0, flavour == 7 ? 6 : 3)));
  n.p.g_shift = static_cast<int32_t>(uniform(rng, 0, 30));
  n.p.eps_term = uniform(rng, 0, 2) == 0 ? 0 : uniform(rng, 0, int64_t{1} << 40);
  for (int c = 0; c < ch; ++c) {
    n.gamma.push_back(static_cast<int32_t>(uniform(rng, -(1 << 30) + 1, (1 << 30) - 1) >> uniform(rng, 0, 20)));
    n.beta.push_back(uniform(rng, -(int64_t{1} << 52) + 1, (int64_t{1} << 52) - 1) >> uniform(rng, 0, 30));
  }
  // Parameters beyond what the vector kernels' double-precision pass takes
  // (|gamma| < 2^30, |beta| < 2^52): the int64 pass must handle them.
  if (flavour == 3) {
    n.gamma[0] = INT32_MAX;
    n.beta[static_cast<size_t>(ch - 1)] = int64_t{1} << 58;
  }
  n.in.assign(static_cast<size_t>(rows) * n.ld_in, int16_t{-7});
  for (int i = 0; i < rows; ++i) {
    const int kind = static_cast<int>(uniform(rng, 0, 5));
    const int16_t constant = static_cast<int16_t>(uniform(rng, n.p.in.qmin, n.p.in.qmax));
    for (int c = 0; c < ch; ++c) {
      int64_t q;
      switch (kind) {
        case 0: q = constant; break;  // sigma = 0 (with eps_term = 0)
        case 1: q = (c % 2) ? n.p.in.qmin : n.p.in.qmax; break;
        case 2: q = std::clamp<int64_t>(n.p.in.zero_point + uniform(rng, -3, 3), n.p.in.qmin, n.p.in.qmax); break;
        // One outlier channel: its deviation is sqrt(C - 1) standard deviations,
        // beyond the double-precision pass's bound for wide rows.
        case 3: q = c == ch / 2 ? n.p.in.qmax : n.p.in.qmin; break;
        default: q = uniform(rng, n.p.in.qmin, n.p.in.qmax); break;
      }
      n.in[static_cast<size_t>(i) * n.ld_in + c] = static_cast<int16_t>(q);
    }
  }
  return n;
}

std::vector<uint8_t> run_norm(vk::Isa isa, NormCase n) {
  n.p.in.alpha = n.alpha.data();
  n.p.gamma = n.gamma.data();
  n.p.beta = n.beta.data();
  const vk::LayerNormPrepared prepared = vk::layernorm_prepare(n.p);
  n.p.prepared = &prepared;
  std::vector<uint8_t> out(static_cast<size_t>(n.rows) * n.ld_out, 0x3C);
  if (isa == vk::Isa::kRef) {
    vk::layernorm_ref(n.rows, n.in.data(), n.ld_in, n.p, out.data(), n.ld_out);
  } else {
    vk::layernorm(isa, n.rows, n.in.data(), n.ld_in, n.p, out.data(), n.ld_out);
  }
  return out;
}

// The same rows onto an int16 stream clamped to [qmin, qmax].
std::vector<int16_t> run_norm_stream(vk::Isa isa, NormCase n, int32_t qmin, int32_t qmax) {
  n.p.in.alpha = n.alpha.data();
  n.p.gamma = n.gamma.data();
  n.p.beta = n.beta.data();
  const vk::LayerNormPrepared prepared = vk::layernorm_prepare(n.p);
  n.p.prepared = &prepared;
  std::vector<int16_t> out(static_cast<size_t>(n.rows) * n.ld_out, int16_t{0x3C3C});
  if (isa == vk::Isa::kRef) {
    vk::layernorm_stream_ref(n.rows, n.in.data(), n.ld_in, n.p, qmin, qmax, out.data(), n.ld_out);
  } else {
    vk::layernorm_stream(isa, n.rows, n.in.data(), n.ld_in, n.p, qmin, qmax, out.data(), n.ld_out);
  }
  return out;
}

// ---------------------------------------------------------------------------
// softmax

struct SoftmaxCase {
  int rows, cols, ld_acc;
  std::vector<int32_t> acc, colsum;
  vk::SoftmaxParams p;
};

// Row kinds: uniform over the span, one huge logit, all equal, clustered
// near the max, and (flavour 3) nz = -x exactly on a grid that reaches every
// Log-Int-Softmax code. Exponent scales: any (exp_mult, exp_shift) in range,
// the ends included; flavour 2's rows span more than 2^31 (x leaves int32).
SoftmaxCase make_softmax(Rng& rng, int rows, int cols, int flavour) {
  SoftmaxCase s{rows, cols, cols + 3, {}, {}, {}};
  s.p.rows = rows;
  s.p.cols = cols;
  s.p.zq = static_cast<int32_t>(uniform(rng, 0, 255));
  const int mk = static_cast<int>(uniform(rng, 0, 5));
  s.p.exp_mult = static_cast<int32_t>(mk == 0 ? 0 : mk == 1 ? 32767 : mk == 2 ? uniform(rng, 960, 1920) : uniform(rng, 1, 32767));
  const int sk = static_cast<int>(uniform(rng, 0, 4));
  s.p.exp_shift = static_cast<int32_t>(sk == 0 ? -15 : sk == 1 ? 15 : uniform(rng, -15, 15));
  if (flavour == 3) {  // y = 2x, nz = (2x * -16384 + 2^14) >> 15 = -x
    s.p.exp_mult = 16384;
    s.p.exp_shift = -1;
  }
  for (int j = 0; j < cols; ++j) s.colsum.push_back(static_cast<int32_t>(uniform(rng, -128 * 64, 127 * 64)));
  // Past the clamp of y (|x| >= 2^(15 + exp_shift)) every x gives the same e.
  int64_t span = std::min<int64_t>(int64_t{3} << (15 + s.p.exp_shift), int64_t{1} << 31);
  if (flavour == 2) span = (int64_t{1} << 31) + (1 << 22);
  s.acc.assign(static_cast<size_t>(rows) * s.ld_acc, 0x55);
  for (int i = 0; i < rows; ++i) {
    const int kind = flavour == 3 ? 4 : static_cast<int>(uniform(rng, 0, 3));
    const int64_t top = flavour == 2 ? (int64_t{1} << 30) + (1 << 21) : uniform(rng, -(1 << 29), 1 << 29);
    const int hot = static_cast<int>(uniform(rng, 0, cols - 1));
    const int64_t local = std::max<int64_t>(0, std::min<int64_t>(span, uniform(rng, 0, 1) ? span : uniform(rng, 0, 3000)));
    for (int j = 0; j < cols; ++j) {
      int64_t logit;
      switch (kind) {
        case 0: logit = top - uniform(rng, 0, local); break;
        case 1: logit = j == hot ? top : top - local; break;
        case 2: logit = top; break;
        case 3: logit = top - std::min<int64_t>(local, uniform(rng, 0, 2)); break;
        default: {  // flavour 3: nz from 0 up past e's last nonzero value; hot one at 0
          const int64_t z = j == hot ? 0 : -((j * 7919 + i * 31) % 1100);
          logit = top + z;
          break;
        }
      }
      // The contract: logits and accumulators are int32 (|zq * colsum| < 2^21).
      logit = std::clamp<int64_t>(logit, int64_t{INT32_MIN} + (1 << 21), int64_t{INT32_MAX} - (1 << 21));
      const int64_t a = logit + int64_t{s.p.zq} * s.colsum[static_cast<size_t>(j)];
      s.acc[static_cast<size_t>(i) * s.ld_acc + j] = static_cast<int32_t>(a);
    }
  }
  return s;
}

template <class T>
std::vector<T> run_softmax(vk::Isa isa, SoftmaxCase s, bool lis, std::vector<int32_t>* rowsum) {
  s.p.colsum_k = s.colsum.data();
  const int ld = s.cols + 4;
  std::vector<T> out(static_cast<size_t>(s.rows) * ld, static_cast<T>(0x6B));
  rowsum->assign(static_cast<size_t>(s.rows) + 1, -99);
  if constexpr (sizeof(T) == 2) {
    (void)lis;
    if (isa == vk::Isa::kRef) vk::softmax_lis_ref(s.acc.data(), s.ld_acc, s.p, out.data(), ld, rowsum->data());
    else vk::softmax_lis(isa, s.acc.data(), s.ld_acc, s.p, out.data(), ld, rowsum->data());
  } else {
    if (isa == vk::Isa::kRef) vk::softmax_u8_ref(s.acc.data(), s.ld_acc, s.p, out.data(), ld, rowsum->data());
    else vk::softmax_u8(isa, s.acc.data(), s.ld_acc, s.p, out.data(), ld, rowsum->data());
  }
  return out;
}

}  // namespace

TEST_CASE("requant_u8: every path equals the reference") {
  Rng rng(101);
  for (int n : kSizes) {
    for (int flavour = 0; flavour < 2; ++flavour) {
      const int m = n >= 768 ? 3 : 13;
      const RequantCase c = make_requant(rng, m, n, flavour);
      const auto want = run_requant(vk::Isa::kRef, c);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_requant(isa, c), want, c.ld_out, "out", ctx_of(isa, "requant_u8", m, n, flavour));
    }
  }
  // Attention shape: 197 rows of 64 columns, with V's zero point per row.
  for (int flavour : {0, 1}) {
    const RequantCase c = make_requant(rng, 197, 64, flavour);
    const auto want = run_requant(vk::Isa::kRef, c);
    for (vk::Isa isa : supported_isas())
      EXPECT_SAME(run_requant(isa, c), want, c.ld_out, "out", ctx_of(isa, "requant_u8", 197, 64, flavour));
  }
}

TEST_CASE("gelu_u8: every path equals the reference") {
  Rng rng(505);
  const std::vector<vk::GeluSpline> splines = test_splines();
  for (const vk::GeluSpline& sp : splines) {
    for (int n : kSizes) {
      const int m = n >= 768 ? 3 : 13;
      const GeluCase c = make_gelu(rng, m, n);
      const auto want = run_gelu(vk::Isa::kRef, c, sp);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_gelu(isa, c, sp), want, c.ld_out, "out", ctx_of(isa, "gelu_u8", m, n, 0));
    }
    // fc1 shape of DeiT-S (one row block).
    const GeluCase c = make_gelu(rng, 101, 1536);
    const auto want = run_gelu(vk::Isa::kRef, c, sp);
    for (vk::Isa isa : supported_isas())
      EXPECT_SAME(run_gelu(isa, c, sp), want, c.ld_out, "out", ctx_of(isa, "gelu_u8", 101, 1536, 0));
  }
}

TEST_CASE("gelu_u8: the kernels need the spline") {
  const int32_t acc[1] = {0}, bias[1] = {0}, shift[1] = {0};
  const int16_t one[1] = {1 << 14}, zero16[1] = {0};
  const uint8_t zp[1] = {0};
  uint8_t out[1] = {0};
  const vk::GeluU8Params p{bias, shift, one, zero16, one, zero16, zp, nullptr};
  for (vk::Isa isa : supported_isas()) CHECK_THROWS_AS(vk::gelu_u8(isa, 1, 1, acc, 1, p, out, 1), std::invalid_argument);
}

TEST_CASE("residual_add: every path equals the reference") {
  Rng rng(202);
  for (int n : kSizes) {
    for (int flavour = 0; flavour < 5; ++flavour) {
      const int m = n >= 768 ? 2 : 9;
      ResidualCase c = make_residual(rng, m, n, flavour);
      if (flavour == 1) c.sm.clear(), c.ss.clear();  // no skip input
      const auto want = run_residual(vk::Isa::kRef, c);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_residual(isa, c), want, c.ld_s, "stream", ctx_of(isa, "residual_add", m, n, flavour));
    }
  }
}

TEST_CASE("residual_add16: every path equals the reference") {
  Rng rng(212);
  for (int n : kSizes) {
    for (int trial = 0; trial < 3; ++trial) {
      const int m = n >= 768 ? 2 : 9;
      const Residual16Case c = make_residual16(rng, m, n);
      const auto want = run_residual16(vk::Isa::kRef, c);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_residual16(isa, c), want, c.ld_s, "stream", ctx_of(isa, "residual_add16", m, n, trial));
    }
  }
}

TEST_CASE("layernorm: every path equals the reference") {
  Rng rng(303);
  // 63-65: the uint8 pass's 64-channel steps; 2047 and 2048: the widest
  // rows its 32-bit lanes take and the first it leaves to the reference.
  const int sizes[] = {1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 192, 197, 384, 768, 2047, 2048, 3072};
  for (int ch : sizes) {
    for (int flavour = 0; flavour < 8; ++flavour) {
      const int rows = ch >= 768 ? 3 : 7;
      const NormCase n = make_norm(rng, rows, ch, flavour);
      const auto want = run_norm(vk::Isa::kRef, n);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_norm(isa, n), want, n.ld_out, "out", ctx_of(isa, "layernorm", rows, ch, flavour));
    }
  }
}

TEST_CASE("layernorm_stream: every path equals the reference") {
  Rng rng(313);
  // The whole int16 range, ranges around zero, off zero on either side, one value.
  const std::pair<int32_t, int32_t> ranges[] = {{-32768, 32767}, {-100, 100}, {5, 20000}, {-20000, -5}, {0, 0}};
  const int sizes[] = {1, 15, 16, 17, 31, 32, 33, 192, 197, 384, 768, 3072};
  for (int ch : sizes) {
    for (int flavour = 0; flavour < 8; ++flavour) {
      const int rows = ch >= 768 ? 3 : 7;
      const NormCase n = make_norm(rng, rows, ch, flavour);
      const auto [qmin, qmax] = ranges[static_cast<size_t>(flavour) % std::size(ranges)];
      const auto want = run_norm_stream(vk::Isa::kRef, n, qmin, qmax);
      for (vk::Isa isa : supported_isas())
        EXPECT_SAME(run_norm_stream(isa, n, qmin, qmax), want, n.ld_out, "out",
                    ctx_of(isa, "layernorm_stream", rows, ch, flavour));
    }
  }
  // Values from both clamps and from inside: the ranges above cut real outputs.
  const NormCase n = make_norm(rng, 7, 384, 0);
  const auto full = run_norm_stream(vk::Isa::kRef, n, -32768, 32767);
  const auto cut = run_norm_stream(vk::Isa::kRef, n, -100, 100);
  int low = 0, high = 0, inside = 0;
  for (int i = 0; i < 7; ++i)
    for (int c = 0; c < 384; ++c) {
      const int16_t v = full[static_cast<size_t>(i) * n.ld_out + c];
      low += v < -100;
      high += v > 100;
      inside += v >= -100 && v <= 100;
      CHECK(cut[static_cast<size_t>(i) * n.ld_out + c] == std::clamp<int16_t>(v, -100, 100));
    }
  CHECK(low > 0);
  CHECK(high > 0);
  CHECK(inside > 0);
}

TEST_CASE("softmax_u8 and softmax_lis: every path equals the reference") {
  Rng rng(404);
  std::set<int> codes;  // Log-Int-Softmax codes the reference produced
  std::vector<int> sizes(std::begin(kSizes), std::end(kSizes));
  sizes.push_back(4100);  // longer than the vector paths' row buffer (4096)
  for (int cols : sizes) {
    for (int flavour = 0; flavour < 4; ++flavour) {
      for (int trial = 0; trial < (cols <= 33 ? 6 : 2); ++trial) {
        const int rows = cols == 197 ? 197 : (cols >= 768 ? 3 : 5);
        const SoftmaxCase s = make_softmax(rng, rows, cols, flavour);
        const int ld = cols + 4;
        std::vector<int32_t> sum_p_ref, sum_w_ref, sum_got;
        const auto p_ref = run_softmax<uint8_t>(vk::Isa::kRef, s, false, &sum_p_ref);
        const auto w_ref = run_softmax<int16_t>(vk::Isa::kRef, s, true, &sum_w_ref);
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < cols; ++j) {
            const int16_t w = w_ref[static_cast<size_t>(i) * ld + j];
            int code = vk::kLisZeroCode;
            for (int k = 0; k < vk::kLisZeroCode; ++k)
              if (w == (1 << (14 - k))) code = k;
            codes.insert(code);
          }
        for (vk::Isa isa : supported_isas()) {
          const std::string ctx = ctx_of(isa, "softmax", rows, cols, flavour * 100 + trial);
          EXPECT_SAME(run_softmax<uint8_t>(isa, s, false, &sum_got), p_ref, ld, "probs", ctx);
          EXPECT_SAME(sum_got, sum_p_ref, 1, "rowsum_p", ctx);
          EXPECT_SAME(run_softmax<int16_t>(isa, s, true, &sum_got), w_ref, ld, "lis weights", ctx);
          EXPECT_SAME(sum_got, sum_w_ref, 1, "rowsum_w", ctx);
        }
      }
    }
  }
  CHECK(codes.size() == 16);  // every code 0..15 was exercised
}

TEST_CASE("attn_lis_rescale: every path equals the reference") {
  Rng rng(707);
  for (int n : kSizes) {
    for (int trial = 0; trial < 4; ++trial) {
      const int m = n >= 768 ? 3 : 13;
      const int ld = n + 3;
      // Row sums: LIS-like (2^14 .. 197 * 2^14), and the ends (0, negative,
      // 1, INT32_MAX); accumulators over all of int32 or near zero.
      std::vector<int32_t> rowsum(static_cast<size_t>(m));
      for (auto& r : rowsum) {
        switch (uniform(rng, 0, 5)) {
          case 0: r = static_cast<int32_t>(uniform(rng, INT32_MIN, 1)); break;
          case 1: r = INT32_MAX; break;
          case 2: r = static_cast<int32_t>(uniform(rng, 1, 3)); break;
          default: r = static_cast<int32_t>(uniform(rng, 1 << 14, 197 << 14)); break;
        }
      }
      std::vector<int32_t> acc(static_cast<size_t>(m) * ld);
      for (auto& a : acc) a = static_cast<int32_t>(trial % 2 ? uniform(rng, INT32_MIN, INT32_MAX) : uniform(rng, -300, 300));
      const int32_t zv = trial == 0 ? -128 : trial == 1 ? 127 : static_cast<int32_t>(uniform(rng, INT32_MIN, INT32_MAX));
      std::vector<int32_t> want = acc;
      vk::attn_lis_rescale_ref(m, n, want.data(), ld, zv, rowsum.data());
      for (vk::Isa isa : supported_isas()) {
        std::vector<int32_t> got = acc;
        vk::attn_lis_rescale(isa, m, n, got.data(), ld, zv, rowsum.data());
        EXPECT_SAME(got, want, ld, "acc", ctx_of(isa, "attn_lis_rescale", m, n, trial));
      }
    }
  }
}

TEST_CASE("attn_kv_s8: every path equals the reference") {
  Rng rng(808);
  for (int n : kSizes) {
    for (int tokens : {1, 17, 197}) {
      if (tokens * n > 200000) continue;
      for (int trial = 0; trial < 3; ++trial) {
        // K and V interleaved in rows of a qkv-like buffer (ld > 2n), bytes
        // uniform, all 0 or all 255.
        const int ld = 2 * n + 5;
        std::vector<uint8_t> buf(static_cast<size_t>(tokens) * ld);
        for (auto& b : buf) b = static_cast<uint8_t>(trial == 0 ? uniform(rng, 0, 255) : trial == 1 ? 0 : 255);
        const auto size = static_cast<size_t>(tokens) * n;
        std::vector<int8_t> k_want(size), v_want(size);
        std::vector<int32_t> sum_want(static_cast<size_t>(tokens));
        vk::attn_kv_s8_ref(tokens, n, buf.data(), buf.data() + n, ld, k_want.data(), v_want.data(), sum_want.data());
        for (vk::Isa isa : supported_isas()) {
          std::vector<int8_t> k_got(size, 7), v_got(size, 7);
          std::vector<int32_t> sum_got(static_cast<size_t>(tokens), 7);
          vk::attn_kv_s8(isa, tokens, n, buf.data(), buf.data() + n, ld, k_got.data(), v_got.data(), sum_got.data());
          const std::string ctx = ctx_of(isa, "attn_kv_s8", tokens, n, trial);
          EXPECT_SAME(k_got, k_want, n, "k_s8", ctx);
          EXPECT_SAME(v_got, v_want, n, "v_s8", ctx);
          EXPECT_SAME(sum_got, sum_want, 1, "colsum_k", ctx);
        }
      }
    }
  }
}

TEST_CASE("inv_fast (vector LayerNorm) equals floor(2^48 / sigma)") {
  auto same = [](uint32_t sigma) {
    const int64_t want = (int64_t{1} << 48) / sigma;
    if (vk::detail::inv_fast(sigma) != want) FAIL_CHECK("inv_fast(" << sigma << ") = " << vk::detail::inv_fast(sigma) << ", want " << want);
  };
  for (uint32_t s = 1; s < 200000; ++s) same(s);
  for (int b = 0; b < 32; ++b)
    for (int64_t ds = -3; ds <= 3; ++ds) {
      const int64_t s = (int64_t{1} << b) + ds;
      if (s >= 1 && s <= UINT32_MAX) same(static_cast<uint32_t>(s));
    }
  // Divisors of 2^48 - 1 and 2^48 + 1 neighbours, where the quotient sits at an integer edge.
  for (uint32_t s : {3u, 5u, 7u, 13u, 17u, 97u, 241u, 257u, 673u, 65537u, 4294967295u, 4294967294u, 16777216u, 16777215u})
    same(s);
  Rng rng(11);
  for (int i = 0; i < 200000; ++i) {
    const auto s = static_cast<uint32_t>(rng() >> (32 + rng() % 32));
    if (s > 0) same(s);
  }
}

TEST_CASE("isqrt_fast (vector LayerNorm) equals isqrt_u64") {
  auto same = [](uint64_t v) {
    if (vk::detail::isqrt_fast(v) != vk::isqrt_u64(v)) FAIL_CHECK("isqrt_fast(" << v << ") = " << vk::detail::isqrt_fast(v) << ", want " << vk::isqrt_u64(v));
  };
  for (uint64_t v = 0; v < 100000; ++v) same(v);
  for (int b = 0; b < 64; ++b)
    for (int64_t dv = -3; dv <= 3; ++dv) same((uint64_t{1} << b) + static_cast<uint64_t>(dv));
  for (uint64_t k : {uint64_t{94906265}, uint64_t{94906266}, uint64_t{3037000499}, uint64_t{3037000500},
                     uint64_t{4294967294}, uint64_t{4294967295}})
    for (int64_t dv = -2; dv <= 2; ++dv) same(k * k + static_cast<uint64_t>(dv));
  same(UINT64_MAX);
  Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    same(v);
    const uint64_t r = vk::isqrt_u64(v);
    same(r * r);
    if (r > 0) same(r * r - 1);
  }
}

TEST_CASE("dispatched kernels accept empty inputs and refuse unknown paths") {
  for (vk::Isa isa : supported_isas()) {
    const vk::RequantU8Params rq{nullptr, nullptr, nullptr, nullptr, nullptr};
    vk::requant_u8(isa, 0, 0, nullptr, 1, rq, nullptr, 1);
    vk::SoftmaxParams sp{0, 5, nullptr, 0, 0, 0};
    vk::softmax_u8(isa, nullptr, 5, sp, nullptr, 5, nullptr);
    vk::attn_lis_rescale(isa, 0, 64, nullptr, 64, 3, nullptr);
    vk::attn_kv_s8(isa, 0, 64, nullptr, nullptr, 64, nullptr, nullptr, nullptr);
  }
  CHECK_THROWS(vk::attn_lis_rescale(static_cast<vk::Isa>(9), 0, 0, nullptr, 1, 0, nullptr));
  CHECK_THROWS(vk::attn_kv_s8(static_cast<vk::Isa>(9), 0, 0, nullptr, nullptr, 1, nullptr, nullptr, nullptr));
  const vk::RequantU8Params rq{nullptr, nullptr, nullptr, nullptr, nullptr};
  CHECK_THROWS(vk::requant_u8(static_cast<vk::Isa>(9), 0, 0, nullptr, 1, rq, nullptr, 1));
}
