// AVX2 elementwise kernels, bit-exact with ref/quant_ref.cpp.
//
// Same plan as the AVX-512 file (16 columns per operation where it does 32),
// with what AVX2 lacks emulated: per-lane 16-bit shifts by multiplies,
// vpermw by vpshufb byte tables, 64-bit
// arithmetic shifts by the sign-flip identity sra(v) = ~srl(~v) for v < 0,
// the 64 x 64-bit low product from three vpmuludq, leading-zero counts from
// float exponents (plus the exact comparison that corrects a rounded-up
// exponent), and masked tails by padded copies or by the reference itself.
// As there, additive terms are folded into the rounding constant, and when
// every shift of a block is >= 32 a dyadic result is the high half of the
// rounded product shifted by shift - 32 (one 32-bit shift).
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <type_traits>

#include "../quant_internal.h"

namespace vitint::kernels::detail {
namespace {

// Arithmetic right shift of int64 lanes (per-lane or common count).
inline __m256i sra64v(__m256i v, __m256i count) {
  const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
  return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), count), sign);
}
inline __m256i sra64(__m256i v, __m128i count) {
  const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
  return _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(v, sign), count), sign);
}

inline int32_t hmax(__m256i v) {
  __m128i x = _mm_max_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_max_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
  x = _mm_max_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
}
inline int32_t hmin(__m256i v) {
  __m128i x = _mm_min_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  x = _mm_min_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 0, 3, 2)));
  x = _mm_min_epi32(x, _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(x);
}
inline int64_t hsum64(__m256i v) {
  const __m128i x = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(_mm_add_epi64(x, _mm_unpackhi_epi64(x, x)));
}
// Sum of int32 lanes, widened first.
inline int64_t hsum32(__m256i v) {
  return hsum64(_mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(v)),
                                 _mm256_cvtepi32_epi64(_mm256_extracti128_si256(v, 1))));
}

// 8 int32 lanes (each <= 255 and >= 0) -> 8 bytes.
inline __m128i to_u8(__m256i v) {
  const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_packus_epi16(w, w);
}
// 8 int32 lanes -> 8 int16, truncating like static_cast<int16_t>.
inline __m128i to_i16_trunc(__m256i v) {
  v = _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF));
  return _mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
}

// Per-column dyadic multipliers of 8 columns.
struct Dyadic8 {
  __m256i mult_e, mult_o, shift_e, shift_o, rnd_e, rnd_o, hi_count;
  bool hi;  // every shift >= 32
};

inline Dyadic8 load_dyadic(const int32_t* mult, const int32_t* shift) {
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mult));
  const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(shift));
  const __m256i one = _mm256_set1_epi64x(1);
  Dyadic8 d;
  d.mult_e = m;
  d.mult_o = _mm256_srli_epi64(m, 32);
  d.shift_e = _mm256_and_si256(s, _mm256_set1_epi64x(0xFFFFFFFFLL));
  d.shift_o = _mm256_srli_epi64(s, 32);
  d.rnd_e = _mm256_srli_epi64(_mm256_sllv_epi64(one, d.shift_e), 1);
  d.rnd_o = _mm256_srli_epi64(_mm256_sllv_epi64(one, d.shift_o), 1);
  d.hi_count = _mm256_sub_epi32(s, _mm256_set1_epi32(32));
  d.hi = hmin(s) >= 32;
  return d;
}

// +-offset * mult + 2^(shift - 1) per even / odd lane (offset in int32 lanes).
struct Folded {
  __m256i e, o;
};
inline Folded fold(const Dyadic8& d, __m256i offset, bool negate) {
  const __m256i pe = _mm256_mul_epi32(offset, d.mult_e);
  const __m256i po = _mm256_mul_epi32(_mm256_srli_epi64(offset, 32), d.mult_o);
  if (negate) return {_mm256_sub_epi64(d.rnd_e, pe), _mm256_sub_epi64(d.rnd_o, po)};
  return {_mm256_add_epi64(d.rnd_e, pe), _mm256_add_epi64(d.rnd_o, po)};
}

// apply_dyadic(x + offset, mult, shift) per lane for int32 x.
template <bool kHi>
inline __m256i dyadic8(__m256i x, const Dyadic8& d, const Folded& c) {
  const __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, d.mult_e), c.e);
  const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), d.mult_o), c.o);
  if constexpr (kHi) {
    return _mm256_srav_epi32(_mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA), d.hi_count);
  } else {
    return _mm256_blend_epi32(sra64v(pe, d.shift_e), _mm256_slli_epi64(sra64v(po, d.shift_o), 32), 0xAA);
  }
}

// The 16-bit requantizations (requant_u8, gelu_u8), 16 columns per
// operation as on AVX-512 with 32: t = sat16((a + b) >> s) from two int32
// vectors (pack16).
// AVX2 has no per-lane 16-bit shifts: the left shift by e + 2 is a vpmullw
// by 2^(e+2) (exact: the capped |x| stays below 2^14 after it), the
// rescale and the output's rounding shifts are vpmulhrsw (as on AVX-512).
struct Front16 {
  __m256i bias_lo, bias_hi, s_lo, s_hi;  // int32
};
inline __m256i load8(const int32_t* v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)); }
inline __m256i load16(const int16_t* v) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v)); }
// Two vectors of 8 int32 as 16 int16, saturating, in order (vpermq undoes
// vpackssdw's 128-bit interleave).
inline __m256i pack16(__m256i lo, __m256i hi) { return _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8); }
// 2^(base + sign * v) for 16 int16 v, the powers in [0, 2^14] (2^15
// saturates to 2^15 - 1), through int32 lanes.
inline __m256i pow2_16(__m256i v, int base, int sign) {
  const __m256i one = _mm256_set1_epi32(1), b = _mm256_set1_epi32(base);
  auto pow2 = [&](__m128i h) {
    const __m256i k = _mm256_cvtepi16_epi32(h);
    return _mm256_sllv_epi32(one, sign > 0 ? _mm256_add_epi32(b, k) : _mm256_sub_epi32(b, k));
  };
  return pack16(pow2(_mm256_castsi256_si128(v)), pow2(_mm256_extracti128_si256(v, 1)));
}
inline Front16 front16(const int32_t* bias, const int32_t* in_shift) {
  return {load8(bias), load8(bias + 8), load8(in_shift), load8(in_shift + 8)};
}
template <bool kSub>
inline __m256i t16(const int32_t* a, __m256i sub, const Front16& f) {
  __m256i a0 = load8(a), a1 = load8(a + 8);
  if constexpr (kSub) {
    a0 = _mm256_sub_epi32(a0, sub);
    a1 = _mm256_sub_epi32(a1, sub);
  }
  const __m256i t0 = _mm256_srav_epi32(_mm256_add_epi32(a0, f.bias_lo), f.s_lo);
  const __m256i t1 = _mm256_srav_epi32(_mm256_add_epi32(a1, f.bias_hi), f.s_hi);
  return pack16(t0, t1);
}

// The output's rounding shift as mulhrs(v, 2^(15 - r)) (2^15 - 1 for r = 0:
// equal after the clamp, see the AVX-512 file), zero point and clamp.
struct Out16 {
  __m256i down, zp;
};
inline Out16 out16(const int16_t* out_shift, const uint8_t* zero_point) {
  return {pow2_16(load16(out_shift), 15, -1),  // 2^15 (r = 0) saturates to 2^15 - 1
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(zero_point)))};
}
inline void store_out16(uint8_t* o, __m256i v, const Out16& c) {
  const __m256i w = _mm256_adds_epi16(_mm256_mulhrs_epi16(v, c.down), c.zp);
  const __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm256_castsi256_si128(b));
}

// GELU (quant.h's definition). AVX2 has no vpermw: the spline's
// coefficients come from byte tables by vpshufb, 16 entries per 128-bit
// lane, the pieces 16-31 from a second table blended in by bit 4 of the
// piece; c1 is a byte, c0 (12 bits) a low and a high byte.
struct GeluColumns16 {
  Front16 f;
  Out16 o;
  __m256i m, cap, to12, back, om;  // int16
};

inline GeluColumns16 gelu_columns16(const GeluU8Params& p) {
  GeluColumns16 c;
  c.f = front16(p.bias, p.in_shift);
  c.o = out16(p.out_shift, p.zero_point);
  const __m256i e = load16(p.frac_cut);
  c.m = load16(p.in_mult);
  c.back = pow2_16(e, 12, -1);                             // 2^(12-e)
  c.cap = _mm256_sub_epi16(c.back, _mm256_set1_epi16(1));  // 2^(12-e) - 1
  c.to12 = pow2_16(e, 2, 1);                               // 2^(e+2)
  c.om = load16(p.out_mult);
  return c;
}

// 32-entry byte table as two 16-byte tables, each in both 128-bit lanes.
struct ByteTable {
  __m256i lo, hi;
};
inline ByteTable byte_table(const uint8_t* t) {
  return {_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t))),
          _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t + 16)))};
}
// Entry piece (0..31, in the low byte of each 16-bit lane; the high byte is
// entry 0, which the callers shift out) with bit 4 of piece in bit 7 of sel.
inline __m256i lookup(const ByteTable& t, __m256i piece, __m256i sel) {
  return _mm256_blendv_epi8(_mm256_shuffle_epi8(t.lo, piece), _mm256_shuffle_epi8(t.hi, piece), sel);
}

void gelu_rows16(int m, const int32_t* acc, int ld_acc, const GeluColumns16& c, const ByteTable* tables,
                 uint8_t* out, int ld_out) {
  const __m256i zero = _mm256_setzero_si256(), low9 = _mm256_set1_epi16(511), byte = _mm256_set1_epi16(0xFF);
  for (int i = 0; i < m; ++i) {
    const __m256i x = _mm256_mulhrs_epi16(t16<false>(acc + static_cast<int64_t>(i) * ld_acc, zero, c.f), c.m);
    const __m256i ax = _mm256_mullo_epi16(_mm256_min_epi16(_mm256_abs_epi16(x), c.cap), c.to12);
    const __m256i piece = _mm256_srli_epi16(ax, 9);
    const __m256i u = _mm256_slli_epi16(_mm256_and_si256(ax, low9), 6);
    const __m256i sel = _mm256_slli_epi16(piece, 3);
    // 8 c1 from a signed byte; 8 c0 from its low and high byte.
    const __m256i c1 = _mm256_srai_epi16(_mm256_slli_epi16(lookup(tables[0], piece, sel), 8), 5);
    const __m256i c0 = _mm256_slli_epi16(_mm256_or_si256(_mm256_and_si256(lookup(tables[1], piece, sel), byte),
                                                         _mm256_slli_epi16(lookup(tables[2], piece, sel), 8)), 3);
    const __m256i y = _mm256_add_epi16(c0, _mm256_mulhrs_epi16(u, c1));
    const __m256i g = _mm256_adds_epi16(_mm256_mulhrs_epi16(y, c.back), _mm256_max_epi16(x, zero));
    store_out16(out + static_cast<int64_t>(i) * ld_out, _mm256_mulhrs_epi16(g, c.om), c.o);
  }
}

// kSat: the stream's range is int16's own (every 16-bit stream), so the
// saturating pack is the clamp (the AVX-512 file does the same).
template <bool kHi, bool kSat>
void residual_block(int m, const int32_t* acc, int ld_acc, const ResidualParams& block,
                    const Dyadic8& br, const Dyadic8& sk, int16_t* stream, int ld_stream) {
  const bool skip = block.skip_mult != nullptr;
  const bool row_bias = block.bias_ld != 0;
  const __m256i zp_out = _mm256_set1_epi32(block.zp_out);
  const __m256i qmin = _mm256_set1_epi32(block.qmin_out);
  const __m256i qmax = _mm256_set1_epi32(block.qmax_out);
  // (s - zp_in) * mult + rnd = s * mult + (rnd - zp_in * mult).
  const Folded skip_c = fold(sk, _mm256_set1_epi32(block.zp_in), true);
  Folded bias_c = fold(br, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.bias)), false);
  for (int i = 0; i < m; ++i) {
    int16_t* s = stream + static_cast<int64_t>(i) * ld_stream;
    if (row_bias && i > 0)
      bias_c = fold(br, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block.bias + static_cast<int64_t>(i) * block.bias_ld)),
                    false);
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + static_cast<int64_t>(i) * ld_acc));
    __m256i v = _mm256_add_epi32(zp_out, dyadic8<kHi>(x, br, bias_c));
    if (skip) {
      const __m256i sv = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
      v = _mm256_add_epi32(v, dyadic8<kHi>(sv, sk, skip_c));
    }
    if constexpr (kSat) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(s),
                       _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
    } else {
      v = _mm256_min_epi32(_mm256_max_epi32(v, qmin), qmax);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(s), to_i16_trunc(v));
    }
  }
}

// ---------------------------------------------------------------------------
// Softmax.

// exp_of (ref/quant_ref.cpp) from the logit l in int32 lanes (see exp32 in
// the AVX-512 file for the clamp to lo). y and -mult fit int16 and the upper
// half of -mult's lanes is 0, so vpmaddwd forms y * -mult; likewise
// rr * (rr - b) for rr = nz & 63. vpsrlvd gives 0 for q >= 32, and
// poly < 2^15 makes every q >= 16 give 0 too.
template <bool kLeft>
inline __m256i exp8(__m256i l, __m256i lo, __m256i mx, __m128i count, __m256i neg_mult) {
  const __m256i x = _mm256_sub_epi32(_mm256_max_epi32(l, lo), mx);
  const __m256i y = kLeft ? _mm256_sll_epi32(x, count) : _mm256_sra_epi32(x, count);
  const __m256i nz = _mm256_srli_epi32(_mm256_add_epi32(_mm256_madd_epi16(y, neg_mult), _mm256_set1_epi32(1 << 14)), 15);
  const __m256i rr = _mm256_and_si256(nz, _mm256_set1_epi32((1 << kExpBits) - 1));
  const __m256i poly = _mm256_add_epi32(_mm256_madd_epi16(rr, _mm256_sub_epi32(rr, _mm256_set1_epi32(kExpB))),
                                        _mm256_set1_epi32(kExpC));
  return _mm256_srlv_epi32(poly, _mm256_srli_epi32(nz, kExpBits));
}

// a <u b as an all-ones lane.
inline __m256i lt_epu32(__m256i a, __m256i b) {
  return _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_max_epu32(a, b), a), _mm256_set1_epi32(-1));
}

// Weights of lis_code_ref(sum, e) for 0 <= e <= sum, sum >= kExpC and
// 2 * sum + e < 2^31 (see the AVX-512 file). floor(log2) comes from float
// exponents; den = 2e < 2^20 is exact, num may round up to the next power
// of two, and then num < den << f0 holds and the comparison lands on the
// right f (num is within 2^-24 of that power, den << (f0 - 1) at least 2^-20
// below it). e = 0 gives f0 >= 127 and so code 15.
inline __m256i lis_weights8(__m256i e, __m256i two_sum) {
  const __m256i num = _mm256_add_epi32(two_sum, e);
  const __m256i den = _mm256_add_epi32(e, e);
  const __m256i en = _mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(num)), 23);
  const __m256i ed = _mm256_srli_epi32(_mm256_castps_si256(_mm256_cvtepi32_ps(den)), 23);
  const __m256i f0 = _mm256_sub_epi32(en, ed);
  const __m256i f = _mm256_add_epi32(f0, lt_epu32(num, _mm256_sllv_epi32(den, f0)));
  const __m256i three_e_f = _mm256_sllv_epi32(_mm256_add_epi32(den, e), f);
  const __m256i up = _mm256_andnot_si256(lt_epu32(num, three_e_f), _mm256_cmpgt_epi32(f, _mm256_setzero_si256()));
  const __m256i code = _mm256_min_epi32(_mm256_sub_epi32(f, up), _mm256_set1_epi32(kLisZeroCode));
  return _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_sub_epi32(_mm256_set1_epi32(14), code));
}

inline __m256i tail_mask8(int w) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(w), idx);
}

template <bool kLis, bool kLeft, class Out>
void softmax_rows(const int32_t* acc, int ld_acc, const SoftmaxParams& p, Out* out, int ld_out,
                  int32_t* rowsum) {
  const int cols = p.cols;
  const int full = cols / 8 * 8;
  const __m256i tail = tail_mask8(cols - full);
  alignas(64) int32_t zc[kMaxSimdCols];
  alignas(64) int32_t buf[kMaxSimdCols];
  const __m256i zq = _mm256_set1_epi32(p.zq);
  for (int j = 0; j < cols; j += 8) {
    const __m256i c = j < full ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p.colsum_k + j))
                               : _mm256_maskload_epi32(p.colsum_k + j, tail);
    _mm256_store_si256(reinterpret_cast<__m256i*>(zc + j), _mm256_mullo_epi32(zq, c));
  }
  const __m128i count = _mm_cvtsi32_si128(kLeft ? -p.exp_shift : p.exp_shift);
  const __m256i neg_mult = _mm256_set1_epi32(-p.exp_mult & 0xFFFF);
  const int64_t reach = int64_t{1} << (15 + p.exp_shift);  // |x| from which y = -32768
  for (int i = 0; i < p.rows; ++i) {
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    Out* o = out + static_cast<int64_t>(i) * ld_out;
    __m256i mx = _mm256_set1_epi32(INT32_MIN);
    for (int j = 0; j < full; j += 8) {
      const __m256i l = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j)),
                                         _mm256_load_si256(reinterpret_cast<const __m256i*>(zc + j)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(buf + j), l);
      mx = _mm256_max_epi32(mx, l);
    }
    if (full < cols) {
      const __m256i l = _mm256_sub_epi32(_mm256_maskload_epi32(a + full, tail),
                                         _mm256_load_si256(reinterpret_cast<const __m256i*>(zc + full)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(buf + full), l);
      mx = _mm256_max_epi32(mx, _mm256_blendv_epi8(_mm256_set1_epi32(INT32_MIN), l, tail));
    }
    const int32_t row_max = hmax(mx);
    const __m256i mx_v = _mm256_set1_epi32(row_max);
    const __m256i lo = _mm256_set1_epi32(static_cast<int32_t>(std::max<int64_t>(int64_t{row_max} - reach, INT32_MIN)));
    __m256i sumv = _mm256_setzero_si256();
    for (int j = 0; j < cols; j += 8) {
      __m256i e = exp8<kLeft>(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf + j)), lo, mx_v, count, neg_mult);
      if (j == full) e = _mm256_and_si256(e, tail);
      _mm256_store_si256(reinterpret_cast<__m256i*>(buf + j), e);
      sumv = _mm256_add_epi32(sumv, e);
    }
    const int64_t sum = hsum32(sumv);
    __m256i total = _mm256_setzero_si256();
    if constexpr (kLis) {
      // 2 * sum + e < 2^31 (the static_assert on kMaxSimdCols).
      const __m256i two_sum = _mm256_set1_epi32(static_cast<int32_t>(2 * sum));
      for (int j = 0; j < cols; j += 8) {
        __m256i w = lis_weights8(_mm256_load_si256(reinterpret_cast<const __m256i*>(buf + j)), two_sum);
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        if (j == full) {
          w = _mm256_and_si256(w, tail);
          alignas(16) int16_t tmp[8];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), w16);
          std::memcpy(o + j, tmp, sizeof(int16_t) * static_cast<size_t>(cols - j));
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j), w16);
        }
        total = _mm256_add_epi32(total, w);
      }
      rowsum[i] = static_cast<int32_t>(hsum32(total));
    } else {
      // e * R < 2^31 and t + 2^(s-1) < 2^31: exact in int32 lanes.
      const SoftmaxRecip r = softmax_recip(sum);
      const __m256i rv = _mm256_set1_epi32(r.mult);
      const __m256i half = _mm256_set1_epi32(1 << (r.shift - 1));
      const __m128i shift = _mm_cvtsi32_si128(r.shift);
      for (int j = 0; j < cols; j += 8) {
        const __m256i e = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + j));
        __m256i v = _mm256_srl_epi32(_mm256_add_epi32(_mm256_srli_epi32(_mm256_mullo_epi32(e, rv), 16), half), shift);
        const __m128i b = to_u8(v);
        if (j == full) {
          v = _mm256_and_si256(v, tail);
          alignas(16) uint8_t tmp[16];
          _mm_store_si128(reinterpret_cast<__m128i*>(tmp), b);
          std::memcpy(o + j, tmp, static_cast<size_t>(cols - j));
        } else {
          _mm_storel_epi64(reinterpret_cast<__m128i*>(o + j), b);
        }
        total = _mm256_add_epi32(total, v);
      }
      rowsum[i] = static_cast<int32_t>(hsum32(total));
    }
  }
}

template <bool kLis, class Out>
void softmax_any(const int32_t* acc, int ld_acc, const SoftmaxParams& p, Out* out, int ld_out,
                 int32_t* rowsum) {
  if (p.rows <= 0) return;
  if (p.cols <= 0 || p.cols > kMaxSimdCols) {
    if constexpr (kLis) {
      softmax_lis_ref(acc, ld_acc, p, out, ld_out, rowsum);
    } else {
      softmax_u8_ref(acc, ld_acc, p, out, ld_out, rowsum);
    }
    return;
  }
  if (p.exp_shift < 0) {
    softmax_rows<kLis, true>(acc, ld_acc, p, out, ld_out, rowsum);
  } else {
    softmax_rows<kLis, false>(acc, ld_acc, p, out, ld_out, rowsum);
  }
}

// ---------------------------------------------------------------------------
// LayerNorm.

inline __m256i load_x(const int16_t* q, const uint8_t* alpha, __m256i zp) {
  const __m256i qv = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  const __m256i av = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(alpha)));
  return _mm256_sllv_epi32(_mm256_sub_epi32(qv, zp), av);
}

struct NormRow {
  __m256i c, sum, inv_lo, inv_hi, half;
  __m256i lo, hi;  // the output's clamp: [0, 255] for uint8, a stream's [qmin, qmax]
  __m128i out_shift;
};

// See the AVX-512 norm8; u * inv (mod 2^64) from 32-bit halves (inv >= 0),
// and t = bits 32..63 of u * inv + 2^31 (|t| < 2^31).
inline __m256i norm4(__m256i x64, __m256i gamma64, __m256i beta, const NormRow& r) {
  const __m256i u = _mm256_sub_epi64(_mm256_mul_epi32(x64, r.c), r.sum);
  const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(u, 32), r.inv_lo),
                                         _mm256_mul_epu32(u, r.inv_hi));
  const __m256i prod = _mm256_add_epi64(_mm256_mul_epu32(u, r.inv_lo), _mm256_slli_epi64(cross, 32));
  const __m256i t = _mm256_srli_epi64(_mm256_add_epi64(prod, r.half), 32);
  __m256i y = sra64(_mm256_add_epi64(_mm256_mul_epi32(t, gamma64), beta), r.out_shift);
  y = _mm256_blendv_epi8(y, r.lo, _mm256_cmpgt_epi64(r.lo, y));
  return _mm256_blendv_epi8(y, r.hi, _mm256_cmpgt_epi64(y, r.hi));
}

// 8 clamped outputs of one row (int32 lanes) from padded-or-not pointers.
inline __m256i norm8(const int16_t* q, const uint8_t* alpha, const int32_t* gamma, const int64_t* beta,
                     __m256i zp, const NormRow& r) {
  const __m256i x = load_x(q, alpha, zp);
  const __m256i g = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gamma));
  const __m256i y_lo = norm4(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(x)),
                             _mm256_cvtepi32_epi64(_mm256_castsi256_si128(g)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(beta)), r);
  const __m256i y_hi = norm4(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(x, 1)),
                             _mm256_cvtepi32_epi64(_mm256_extracti128_si256(g, 1)),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(beta + 4)), r);
  // Low halves of the 8 int64 lanes, in order.
  const __m256i lo32 = _mm256_castps_si256(
      _mm256_shuffle_ps(_mm256_castsi256_ps(y_lo), _mm256_castsi256_ps(y_hi), _MM_SHUFFLE(2, 0, 2, 0)));
  return _mm256_permute4x64_epi64(lo32, _MM_SHUFFLE(3, 1, 2, 0));
}

// The exact double-precision second pass of the AVX-512 stream LayerNorm
// (see norm8_f64 there for why nothing rounds), for 8 channels from c on: q
// as int16, t's per-channel factors, sum S and inv / 2^32 broadcast. w is
// clamped to [lo, hi] before the conversion (floor commutes with that
// clamp), so neither the conversion nor the pack sees an out-of-range value.
inline __m256i norm8_f64(const int16_t* q, const F64Factors& t, size_t c, __m256d sum, __m256d inv,
                         __m256d lo, __m256d hi) {
  const __m256i qv = _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
  __m128i y[2];
  for (int h = 0; h < 2; ++h) {
    const size_t cc = c + 4 * static_cast<size_t>(h);
    const __m256d qd = _mm256_cvtepi32_pd(h == 0 ? _mm256_castsi256_si128(qv) : _mm256_extracti128_si256(qv, 1));
    const __m256d u = _mm256_sub_pd(_mm256_fmsub_pd(qd, _mm256_loadu_pd(t.ca + cc), _mm256_loadu_pd(t.cz + cc)), sum);
    const __m256d v = _mm256_floor_pd(_mm256_fmadd_pd(u, inv, _mm256_set1_pd(0.5)));
    const __m256d w = _mm256_min_pd(_mm256_max_pd(_mm256_fmadd_pd(v, _mm256_loadu_pd(t.gamma + cc), _mm256_loadu_pd(t.beta + cc)), lo), hi);
    y[h] = _mm256_cvttpd_epi32(_mm256_floor_pd(w));
  }
  return _mm256_inserti128_si256(_mm256_castsi128_si256(y[0]), y[1], 1);
}

// 8 clamped int32 outputs -> 8 int16 (a stream).
inline __m128i narrow_norm(__m256i y) { return _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1)); }

struct U8Row {
  __m256i neg_s, shift, mult;
  __m128i e;
  bool left;
};

// The uint8 LayerNorm's second pass for 16 channels from c on, in pack order
// (see the AVX-512 norm32_u8): u = C x - S in the even and the odd channels'
// 32-bit lanes from the raw q vector (vpmaddwd with C 2^alpha, plus
// -zp C 2^alpha - S), u' = u >> r (or << -r), then in 16-bit lanes
// t = mulhrs(u', R), p = mulhrs(t, G), sat16(p + B) >> e.
inline __m256i norm16_u8(const int16_t* q, const LayerNormPrepared& t, size_t c, const U8Row& r) {
  const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
  auto load32 = [](const std::vector<int32_t>& v, size_t i) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(v.data() + i));
  };
  __m256i ue = _mm256_add_epi32(_mm256_madd_epi16(qv, load32(t.even, c / 2)), _mm256_add_epi32(load32(t.zeven, c / 2), r.neg_s));
  __m256i uo = _mm256_add_epi32(_mm256_madd_epi16(qv, load32(t.odd, c / 2)), _mm256_add_epi32(load32(t.zodd, c / 2), r.neg_s));
  if (r.left) {
    ue = _mm256_sllv_epi32(ue, r.shift);
    uo = _mm256_sllv_epi32(uo, r.shift);
  } else {
    ue = _mm256_srav_epi32(ue, r.shift);
    uo = _mm256_srav_epi32(uo, r.shift);
  }
  const __m256i tv = _mm256_mulhrs_epi16(_mm256_packs_epi32(ue, uo), r.mult);
  const __m256i pv = _mm256_mulhrs_epi16(tv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.gp.data() + c)));
  return _mm256_sra_epi16(_mm256_adds_epi16(pv, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.bp.data() + c))), r.e);
}

// 32 uint8 outputs from channels c on (q: the row's channels from c, 32 of
// them readable).
inline __m256i norm32_u8(const int16_t* q, const LayerNormPrepared& t, size_t c, const U8Row& r) {
  // vpackuswb's order (per 128-bit lane: eight words of each vector, each
  // eight in pack order) back to channels.
  const __m256i order = _mm256_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15,
                                         0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
  const __m256i y = _mm256_packus_epi16(norm16_u8(q, t, c, r), norm16_u8(q + 16, t, c + 16, r));
  return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(y, order), _MM_SHUFFLE(3, 1, 2, 0));
}

}  // namespace

void avx2_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                     uint8_t* out, int ld_out) {
  if (m <= 0 || n <= 0) return;
  const int full = n / 16 * 16;
  for (int j0 = 0; j0 < full; j0 += 16) {
    const Front16 f = front16(p.bias + j0, p.in_shift + j0);
    const Out16 o = out16(p.out_shift + j0, p.zero_point + j0);
    const __m256i mult = load16(p.mult + j0);
    for (int i = 0; i < m; ++i) {
      const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc + j0;
      const __m256i t = p.row_sub ? t16<true>(a, _mm256_set1_epi32(p.row_sub[i]), f) : t16<false>(a, _mm256_setzero_si256(), f);
      store_out16(out + static_cast<int64_t>(i) * ld_out + j0, _mm256_mulhrs_epi16(t, mult), o);
    }
  }
  if (full < n) requant_u8_ref(m, n - full, acc + full, ld_acc, p.from(full), out + full, ld_out);
}

void avx2_gelu_u8(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                  int ld_out) {
  if (m <= 0 || n <= 0) return;
  // Byte tables: c1, c0's low byte, c0's high byte.
  alignas(32) uint8_t bytes[3][kGeluPieces];
  for (int j = 0; j < kGeluPieces; ++j) {
    bytes[0][j] = static_cast<uint8_t>(p.spline->c1[j]);
    bytes[1][j] = static_cast<uint8_t>(p.spline->c0[j] & 0xFF);
    bytes[2][j] = static_cast<uint8_t>((p.spline->c0[j] >> 8) & 0xFF);
  }
  const ByteTable tables[3] = {byte_table(bytes[0]), byte_table(bytes[1]), byte_table(bytes[2])};
  const int full = n / 16 * 16;
  for (int j0 = 0; j0 < full; j0 += 16)
    gelu_rows16(m, acc + j0, ld_acc, gelu_columns16(p.from(j0)), tables, out + j0, ld_out);
  if (full < n) gelu_u8_ref(m, n - full, acc + full, ld_acc, p.from(full), out + full, ld_out);
}

void avx2_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                       int16_t* stream, int ld_stream) {
  if (m <= 0 || n <= 0) return;
  const bool skip = p.skip_mult != nullptr;
  const int full = n / 8 * 8;
  for (int j0 = 0; j0 < n; j0 += 8) {
    ResidualParams block = p;
    block.bias += j0;
    block.branch_mult += j0;
    block.branch_shift += j0;
    if (skip) {
      block.skip_mult += j0;
      block.skip_shift += j0;
    }
    if (j0 == full) {  // the last < 8 columns: reference
      residual_add_ref(m, n - full, acc + j0, ld_acc, block, stream + j0, ld_stream);
      break;
    }
    const Dyadic8 br = load_dyadic(p.branch_mult + j0, p.branch_shift + j0);
    const Dyadic8 sk = skip ? load_dyadic(p.skip_mult + j0, p.skip_shift + j0) : br;
    const bool hi = br.hi && sk.hi;
    with_flags(hi, p.qmin_out == INT16_MIN && p.qmax_out == INT16_MAX, [&](auto k_hi, auto k_sat) {
      residual_block<decltype(k_hi)::value, decltype(k_sat)::value>(m, acc + j0, ld_acc, block, br, sk, stream + j0, ld_stream);
    });
  }
}

// 16 columns per operation; the last < 16 by the reference.
void avx2_residual_add16(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                         int ld_stream) {
  if (m <= 0 || n <= 0) return;
  const int full = n / 16 * 16;
  for (int j0 = 0; j0 < full; j0 += 16) {
    const Front16 f = front16(p.bias + j0, p.in_shift + j0);
    const __m256i mult = load16(p.mult + j0);
    for (int i = 0; i < m; ++i) {
      const __m256i t = t16<false>(acc + static_cast<int64_t>(i) * ld_acc + j0, _mm256_setzero_si256(), f);
      auto* s = reinterpret_cast<__m256i*>(stream + static_cast<int64_t>(i) * ld_stream + j0);
      const __m256i b = _mm256_adds_epi16(t, _mm256_mulhrs_epi16(t, mult));
      _mm256_storeu_si256(s, _mm256_adds_epi16(_mm256_loadu_si256(s), b));
    }
  }
  if (full < n) residual_add16_ref(m, n - full, acc + full, ld_acc, p.from(full), stream + full, ld_stream);
}

namespace {
class NormStatsPass {
 public:
  NormStatsPass(const LayerNormParams& p, bool track)
      : p_(p), full_(p.channels / 8 * 8), rest_(p.channels - full_), zp_(_mm256_set1_epi32(p.in.zero_point)),
        track_(track) {
    std::memcpy(alpha_pad_, p.in.alpha + full_, static_cast<size_t>(rest_));
  }

  NormStats operator()(const int16_t* q) {
    // The last < 8 channels go through padded copies: q = zp and alpha = 0
    // make x = 0, which adds nothing to the sums (and can only widen the
    // tracked range, which only sends a row to the int64 pass).
    for (int c = 0; c < 8; ++c) q_pad_[c] = c < rest_ ? q[full_ + c] : static_cast<int16_t>(p_.in.zero_point);
    int64_t sum = 0;
    __m256i s32 = _mm256_setzero_si256();
    __m256i sq = _mm256_setzero_si256();
    __m256i x_lo = _mm256_set1_epi32(INT32_MAX), x_hi = _mm256_set1_epi32(INT32_MIN);
    int in_lane = 0;
    for (int c = 0; c < p_.channels; c += 8) {
      const __m256i x = c < full_ ? load_x(q + c, p_.in.alpha + c, zp_) : load_x(q_pad_, alpha_pad_, zp_);
      const __m256i xo = _mm256_srli_epi64(x, 32);
      if (track_) {
        x_lo = _mm256_min_epi32(x_lo, x);
        x_hi = _mm256_max_epi32(x_hi, x);
      }
      s32 = _mm256_add_epi32(s32, x);
      sq = _mm256_add_epi64(sq, _mm256_add_epi64(_mm256_mul_epi32(x, x), _mm256_mul_epi32(xo, xo)));
      if (++in_lane == 2048 || c + 8 >= p_.channels) {  // |x| < 2^19
        sum += hsum32(s32);
        s32 = _mm256_setzero_si256();
        in_lane = 0;
      }
    }
    const int64_t d = int64_t{p_.channels} * hsum64(sq) - sum * sum + p_.eps_term;
    return {sum, isqrt_fast(static_cast<uint64_t>(d)), track_ ? hmin(x_lo) : 0, track_ ? hmax(x_hi) : 0};
  }

  // The padded copies of the row's last < 8 channels, as the last call left them.
  const int16_t* q_pad() const { return q_pad_; }
  const uint8_t* alpha_pad() const { return alpha_pad_; }

 private:
  const LayerNormParams& p_;
  const int full_, rest_;
  const __m256i zp_;
  const bool track_;
  alignas(32) int16_t q_pad_[8];
  alignas(32) uint8_t alpha_pad_[8] = {};
};

void layernorm_u8_rows(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out, int ld_out) {
  const LayerNormPrepared& prep = *p.prepared;
  NormStatsPass stats(p, false);
  U8Row u8;
  u8.e = _mm_cvtsi32_si128(prep.u8.out_shift);
  // The last < 32 channels: a zero-padded copy of q (the padded channels'
  // table entries are zero) and of the outputs.
  const int full32 = p.channels / 32 * 32;
  alignas(32) int16_t q32[32] = {};
  alignas(32) uint8_t o32[32];
  for (int i = 0; i < rows; ++i) {
    const int16_t* q = in + static_cast<int64_t>(i) * ld_in;
    uint8_t* o = out + static_cast<int64_t>(i) * ld_out;
    const NormStats st = stats(q);
    const LayerNormRowScale rs = layernorm_row_scale(prep.u8, st.sigma);
    u8.neg_s = _mm256_set1_epi32(static_cast<int32_t>(-st.sum));
    u8.left = rs.shift < 0;
    u8.shift = _mm256_set1_epi32(u8.left ? -rs.shift : rs.shift);
    u8.mult = _mm256_set1_epi16(static_cast<int16_t>(rs.mult));
    for (int c = 0; c < full32; c += 32)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + c), norm32_u8(q + c, prep, static_cast<size_t>(c), u8));
    if (full32 < p.channels) {
      const auto n = static_cast<size_t>(p.channels - full32);
      std::memcpy(q32, q + full32, sizeof(int16_t) * n);
      _mm256_store_si256(reinterpret_cast<__m256i*>(o32), norm32_u8(q32, prep, static_cast<size_t>(full32), u8));
      std::memcpy(o + full32, o32, n);
    }
  }
}

// The stream LayerNorm, its outputs clamped to [lo, hi]: the exact double
// pass where it is exact for the row (layernorm_f64_exact), the int64 pass
// otherwise.
void layernorm_stream_rows(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t lo, int32_t hi,
                           int16_t* out, int ld_out) {
  const LayerNormPrepared& prep = *p.prepared;
  const int c_count = p.channels;
  const int full = c_count / 8 * 8;
  const int rest = c_count - full;
  const __m256i zp = _mm256_set1_epi32(p.in.zero_point);
  NormStatsPass stats(p, layernorm_tracks_range(c_count));
  alignas(32) int32_t gamma_pad[8] = {};
  alignas(32) int64_t beta_pad[8] = {};
  std::memcpy(gamma_pad, p.gamma + full, sizeof(int32_t) * static_cast<size_t>(rest));
  std::memcpy(beta_pad, p.beta + full, sizeof(int64_t) * static_cast<size_t>(rest));
  NormRow r;
  r.c = _mm256_set1_epi64x(c_count);
  r.half = _mm256_set1_epi64x(int64_t{1} << 31);
  r.lo = _mm256_set1_epi64x(lo);
  r.hi = _mm256_set1_epi64x(hi);
  r.out_shift = _mm_cvtsi32_si128(16 + p.g_shift);
  const __m256d lo_d = _mm256_set1_pd(lo), hi_d = _mm256_set1_pd(hi);
  for (int i = 0; i < rows; ++i) {
    const int16_t* q = in + static_cast<int64_t>(i) * ld_in;
    int16_t* o = out + static_cast<int64_t>(i) * ld_out;
    const NormStats st = stats(q);
    const int64_t inv = st.sigma ? inv_fast(st.sigma) : 0;
    // eight(c, pad): the outputs of channels c..c+7, from the zero-padded
    // copies for the last partial group (pad), whose padded lanes' outputs
    // are dropped.
    auto store_row = [&](auto&& eight) {
      for (int c = 0; c < full; c += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + c), narrow_norm(eight(c, false)));
      if (rest) {
        alignas(16) int16_t tmp[8];
        _mm_store_si128(reinterpret_cast<__m128i*>(tmp), narrow_norm(eight(full, true)));
        std::memcpy(o + full, tmp, sizeof(int16_t) * static_cast<size_t>(rest));
      }
    };
    if (layernorm_f64_exact(prep, st.sum, inv, st.x_min, st.x_max)) {
      // The tables are zero-padded to 16 channels.
      const __m256d sv = _mm256_set1_pd(static_cast<double>(st.sum));
      const __m256d iv = _mm256_set1_pd(static_cast<double>(inv) * 0x1p-32);
      const F64Factors f(prep);
      store_row([&](int c, bool pad) {
        return norm8_f64(pad ? stats.q_pad() : q + c, f, static_cast<size_t>(c), sv, iv, lo_d, hi_d);
      });
      continue;
    }
    r.sum = _mm256_set1_epi64x(st.sum);
    r.inv_lo = _mm256_set1_epi64x(inv & 0xFFFFFFFF);
    r.inv_hi = _mm256_set1_epi64x(inv >> 32);
    store_row([&](int c, bool pad) {
      return pad ? norm8(stats.q_pad(), stats.alpha_pad(), gamma_pad, beta_pad, zp, r)
                 : norm8(q + c, p.in.alpha + c, p.gamma + c, p.beta + c, zp, r);
    });
  }
}

}  // namespace

void avx2_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, uint8_t* out,
                    int ld_out) {
  if (rows <= 0) return;
  if (!p.prepared->vector_ok || !p.prepared->u8_vector_ok) return layernorm_ref(rows, in, ld_in, p, out, ld_out);
  layernorm_u8_rows(rows, in, ld_in, p, out, ld_out);
}

void avx2_layernorm_stream(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                           int32_t qmax, int16_t* out, int ld_out) {
  if (rows <= 0) return;
  if (!p.prepared->vector_ok) return layernorm_stream_ref(rows, in, ld_in, p, qmin, qmax, out, ld_out);
  layernorm_stream_rows(rows, in, ld_in, p, qmin, qmax, out, ld_out);
}

void avx2_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                     int ld_probs, int32_t* rowsum_p) {
  softmax_any<false>(acc, ld_acc, p, probs, ld_probs, rowsum_p);
}

void avx2_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                      int ld_w, int32_t* rowsum_w) {
  softmax_any<true>(acc, ld_acc, p, weights, ld_w, rowsum_w);
}

// Rescaled rows in 4 int64 lanes: (x - corr) * r modulo 2^64 from two
// vpmuludq (0 <= r < 2^31), rounded; bits 16..47 of the sum are the
// reference's int32 result, so a logical shift does.
void avx2_attn_lis_rescale(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum) {
  const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m256i half = _mm256_set1_epi64x(int64_t{1} << 15);
  attn_lis_rescale_rows(m, acc, ld_acc, zv, rowsum, [&](int32_t* row, int64_t c, int64_t rr) {
    const __m256i corr = _mm256_set1_epi64x(c);
    const __m256i r = _mm256_set1_epi64x(rr);
    for (int j = 0; j < n; j += 4) {
      const __m128i k = _mm256_castsi256_si128(tail_mask8(n - j));
      const __m256i t = _mm256_sub_epi64(_mm256_cvtepi32_epi64(_mm_maskload_epi32(row + j, k)), corr);
      const __m256i prod = _mm256_add_epi64(_mm256_mul_epu32(t, r),
                                            _mm256_slli_epi64(_mm256_mul_epu32(_mm256_srli_epi64(t, 32), r), 32));
      const __m256i y = _mm256_srli_epi64(_mm256_add_epi64(prod, half), 16);
      _mm_maskstore_epi32(row + j, k, _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(y, even)));
    }
  });
}

// As the AVX-512 kernel, 32 bytes at a time; the last n % 32 values of a
// row one by one.
void avx2_attn_kv_s8(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                     int32_t* colsum_k) {
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  const int whole = n / 32 * 32;
  attn_kv_rows(tokens, n, k, v, ld, k_s8, v_s8, colsum_k, [&](const uint8_t* kr, const uint8_t* vr, int8_t* kd, int8_t* vd) {
    __m256i sums = _mm256_setzero_si256();
    for (int d = 0; d < whole; d += 32) {
      const __m256i kv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kr + d));
      const __m256i vv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vr + d));
      sums = _mm256_add_epi64(sums, _mm256_sad_epu8(kv, _mm256_setzero_si256()));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(kd + d), _mm256_xor_si256(kv, flip));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(vd + d), _mm256_xor_si256(vv, flip));
    }
    return static_cast<int32_t>(hsum64(sums)) - 128 * whole + attn_kv_row_scalar(kr, vr, kd, vd, whole, n);
  });
}

}  // namespace vitint::kernels::detail
