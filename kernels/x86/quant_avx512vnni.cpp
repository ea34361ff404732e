// AVX-512 elementwise kernels, bit-exact with ref/quant_ref.cpp.
//
// Dyadic requantization (the residual add): the int64 product of
// apply_dyadic is formed by vpmuldq on the even and the odd int32 lanes,
// rounded and shifted arithmetically in 64 bits and truncated back to int32
// like the reference's cast. Additive terms are folded into the rounding
// constant: (a + bias) * mult + 2^(shift-1) = a * mult + c with c = bias *
// mult + 2^(shift-1), exact in int64 under apply_dyadic's contract (so the
// 33-bit sum a + bias never has to exist). The kernel walks blocks of 16
// columns down all rows, preparing the per-column constants once per block;
// when every shift of a block is >= 32 the result is the high half of the
// 64-bit sum shifted by shift - 32 (one 32-bit shift).
//
// The uint8 requantizations (requant_u8, gelu_u8) are defined in 16-bit
// steps: 32 columns per operation from the pack into int16 on.
//
// Softmax: three passes over a row kept in stack buffers (int32 logits,
// then int16 exponentials). From the clamped logit difference on, every
// step fits 16 bits, so the exponentials and the uint8 probabilities take
// 32 lanes per operation; the 4-bit Log-Int-Softmax code comes from
// leading-zero counts and two exact comparisons instead of lis_code_ref's
// loop.
// GCC 12 reports the _mm*_undefined_*() pass-through operands inside its own
// AVX-512 intrinsics as maybe-uninitialized (GCC PR 105593, fixed in 13).
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../quant_internal.h"

namespace vitint::kernels::detail {
namespace {

// The first w of 16 lanes (none for w <= 0).
inline __mmask16 tail_mask(int w) {
  if (w <= 0) return 0;
  return w >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << w) - 1u);
}

// Per-column dyadic multipliers of 16 columns, split into the even and odd
// int32 lanes (each in the low half of a 64-bit lane).
struct Dyadic16 {
  __m512i mult_e, mult_o, shift_e, shift_o, rnd_e, rnd_o, hi_count;
  bool hi;  // every active shift >= 32
};

inline Dyadic16 load_dyadic(__mmask16 k, const int32_t* mult, const int32_t* shift) {
  const __m512i m = _mm512_maskz_loadu_epi32(k, mult);
  const __m512i s = _mm512_maskz_loadu_epi32(k, shift);
  const __m512i one = _mm512_set1_epi64(1);
  Dyadic16 d;
  d.mult_e = m;
  d.mult_o = _mm512_srli_epi64(m, 32);
  d.shift_e = _mm512_and_si512(s, _mm512_set1_epi64(0xFFFFFFFFLL));
  d.shift_o = _mm512_srli_epi64(s, 32);
  // 2^(shift - 1), and 0 for shift 0 (apply_dyadic does not round then).
  d.rnd_e = _mm512_srli_epi64(_mm512_sllv_epi64(one, d.shift_e), 1);
  d.rnd_o = _mm512_srli_epi64(_mm512_sllv_epi64(one, d.shift_o), 1);
  d.hi_count = _mm512_sub_epi32(s, _mm512_set1_epi32(32));
  d.hi = _mm512_mask_cmplt_epi32_mask(k, s, _mm512_set1_epi32(32)) == 0;
  return d;
}

// The rounding constant with an additive term folded in: +-offset * mult +
// 2^(shift - 1), per even / odd lane (offset in int32 lanes).
struct Folded {
  __m512i e, o;
};
inline Folded fold(const Dyadic16& d, __m512i offset, bool negate) {
  const __m512i pe = _mm512_mul_epi32(offset, d.mult_e);
  const __m512i po = _mm512_mul_epi32(_mm512_srli_epi64(offset, 32), d.mult_o);
  if (negate) return {_mm512_sub_epi64(d.rnd_e, pe), _mm512_sub_epi64(d.rnd_o, po)};
  return {_mm512_add_epi64(d.rnd_e, pe), _mm512_add_epi64(d.rnd_o, po)};
}

// Eight int64 results of the even lanes (e) and eight of the odd lanes (o)
// as 16 int32 lanes, from each result's high or low half: one vpshufd with
// a merge mask, on port 5, where a 64-bit shift (port 0) and a blend were.
inline __m512i high_halves(__m512i e, __m512i o) { return _mm512_mask_shuffle_epi32(o, 0x5555, e, _MM_PERM_CDAB); }
inline __m512i low_halves(__m512i e, __m512i o) { return _mm512_mask_shuffle_epi32(e, 0xAAAA, o, _MM_PERM_CDAB); }

// apply_dyadic(x + offset, mult, shift) per lane for int32 x.
template <bool kHi>
inline __m512i dyadic16(__m512i x, const Dyadic16& d, const Folded& c) {
  const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(x, d.mult_e), c.e);
  const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), d.mult_o), c.o);
  if constexpr (kHi) {
    return _mm512_srav_epi32(high_halves(pe, po), d.hi_count);
  } else {
    return low_halves(_mm512_srav_epi64(pe, d.shift_e), _mm512_srav_epi64(po, d.shift_o));
  }
}

// ---------------------------------------------------------------------------
// Softmax helpers.

// A vpack* of two vectors back in order: the packs interleave the operands'
// halves of each 128-bit lane (a qword each), the qword permutation puts the
// first operand's before the second's.
inline __m512i pack_order(__m512i packed) {
  return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), packed);
}
// Two vectors of 16 int32 as 32 int16, saturating, in order.
inline __m512i pack16(__m512i lo, __m512i hi) { return pack_order(_mm512_packs_epi32(lo, hi)); }

// Pack order: vpackssdw(a, b) of columns 0-15 (a) and 16-31 (b) leaves in
// word w = 8 L + p (128-bit lane L) column packed_column(w). The uint8
// epilogues and softmax_u8 keep that order from the pack to the store
// instead of a qword permutation per pack: their per-column numbers are
// permuted into it once per block of columns (vpermw), and a vpackuswb of
// two such vectors goes back to column order by one vpermb per 64 bytes,
// which takes the place of the permutation vpackuswb needs anyway. (The
// uint8 LayerNorm packs its even and odd channels instead and has an order
// of its own: LayerNormPrepared.)
constexpr int packed_column(int w) { return (w & 3) + ((w >> 3) << 2) + ((w & 4) << 2); }
constexpr int packed_word(int c) { return (c & 3) + (((c >> 2) & 3) << 3) + ((c >> 4) << 2); }
struct PackTables {
  alignas(64) int16_t to_packed[32];   // vpermw: column order -> pack order
  alignas(64) int16_t to_columns[32];  // vpermw: pack order -> column order
  alignas(64) uint8_t bytes[64];       // vpermb: vpackuswb(x, y) -> x's 32 columns, then y's
};
constexpr PackTables make_pack_tables() {
  PackTables t{};
  for (int i = 0; i < 32; ++i) {
    t.to_packed[i] = static_cast<int16_t>(packed_column(i));
    t.to_columns[i] = static_cast<int16_t>(packed_word(i));
    const int w = packed_word(i);
    t.bytes[i] = static_cast<uint8_t>(16 * (w >> 3) + (w & 7));
    t.bytes[32 + i] = static_cast<uint8_t>(16 * (w >> 3) + 8 + (w & 7));
  }
  return t;
}
constexpr PackTables kPack = make_pack_tables();
inline __m512i to_packed(__m512i v) { return _mm512_permutexvar_epi16(_mm512_load_si512(kPack.to_packed), v); }
inline __m512i to_columns(__m512i v) { return _mm512_permutexvar_epi16(_mm512_load_si512(kPack.to_columns), v); }
// 32 + 32 bytes in column order from two vectors of 32 words in pack order.
inline __m512i packus_columns(__m512i x, __m512i y) {
  return _mm512_permutexvar_epi8(_mm512_load_si512(kPack.bytes), _mm512_packus_epi16(x, y));
}

// The steps of exp_of (ref/quant_ref.cpp) from x = l - max to i-exp, 32
// columns in 16-bit lanes. max(l, lo) - max, lo = max(max - 2^(15 + shift),
// INT32_MIN), is x clamped to where y = floor(x * 2^-shift) reaches -32768:
// exact in int32 (|x| <= 2^30), so y fits int16 and vpackssdw does not
// saturate. vpmulhrsw is (y * -mult + 2^14) >> 15; r * (r + b) =
// rr * (rr - b) for rr = nz & 63 fits int16 (vpmullw), and vpsrlvw gives 0
// for the shifts q >= 16. The shift by exp_shift takes its count from a
// vector (vpsravd / vpsllvd: one uop) rather than from an xmm register
// (vpsrad zmm, xmm: two uops on Intel, one on port 5).
// kPacked: the 32 results in pack order (softmax_u8), else in column order.
template <bool kLeft, bool kPacked>
inline __m512i exp32(__m512i l0, __m512i l1, __m512i lo, __m512i mx, __m512i count, __m512i neg_mult) {
  const __m512i x0 = _mm512_sub_epi32(_mm512_max_epi32(l0, lo), mx);
  const __m512i x1 = _mm512_sub_epi32(_mm512_max_epi32(l1, lo), mx);
  const __m512i y0 = kLeft ? _mm512_sllv_epi32(x0, count) : _mm512_srav_epi32(x0, count);
  const __m512i y1 = kLeft ? _mm512_sllv_epi32(x1, count) : _mm512_srav_epi32(x1, count);
  const __m512i nz = _mm512_mulhrs_epi16(kPacked ? _mm512_packs_epi32(y0, y1) : pack16(y0, y1), neg_mult);
  const __m512i rr = _mm512_and_si512(nz, _mm512_set1_epi16((1 << kExpBits) - 1));
  const __m512i poly = _mm512_add_epi16(_mm512_mullo_epi16(rr, _mm512_sub_epi16(rr, _mm512_set1_epi16(kExpB))),
                                        _mm512_set1_epi16(kExpC));
  return _mm512_srlv_epi16(poly, _mm512_srli_epi16(nz, kExpBits));
}

// lis_code_ref(sum, e) turned into weights 2^(14 - code) (0 for code 15),
// for 0 <= e <= sum, sum >= kExpC and 2 * sum + e < 2^31. num = 2 * sum + e,
// den = 2 * e; the loop's f is min(15, floor(log2(num / den))): the
// leading-zero counts give it or one more, and one comparison decides.
// e = 0 needs no special case: lzcnt(0) = 32 makes f >= 16 (num >= 2^15).
inline __m512i lis_weights16(__m512i e, __m512i two_sum) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i num = _mm512_add_epi32(two_sum, e);
  const __m512i den = _mm512_add_epi32(e, e);
  const __m512i f0 = _mm512_sub_epi32(_mm512_lzcnt_epi32(den), _mm512_lzcnt_epi32(num));
  const __m512i f = _mm512_mask_sub_epi32(f0, _mm512_cmplt_epi32_mask(num, _mm512_sllv_epi32(den, f0)), f0, one);
  // One more when round(sum / e) >= 1.5 * 2^f, i.e. num >= 3e * 2^f, for
  // f >= 1. For f <= 14, 3e * 2^f <= 1.5 * num < 2^32 (unsigned compare);
  // larger f end at code 15 whatever the comparison says.
  const __m512i three_e_f = _mm512_sllv_epi32(_mm512_add_epi32(den, e), f);
  const __mmask16 up =
      _mm512_mask_cmpge_epu32_mask(_mm512_cmpgt_epi32_mask(f, _mm512_setzero_si512()), num, three_e_f);
  const __m512i code = _mm512_min_epi32(_mm512_mask_add_epi32(f, up, f, one), _mm512_set1_epi32(kLisZeroCode));
  // A shift count of -1 (code 15) reads as >= 32 and gives 0.
  return _mm512_sllv_epi32(one, _mm512_sub_epi32(_mm512_set1_epi32(14), code));
}

// f(j, mask) for the 16-column vectors of a row: the whole vectors with a
// constant full mask, then the partial one (no per-vector mask arithmetic).
template <class F>
inline void for_vectors(int cols, F&& f) {
  int j = 0;
  for (; j + 16 <= cols; j += 16) f(j, static_cast<__mmask16>(0xFFFF));
  if (j < cols) f(j, tail_mask(cols - j));
}

template <bool kLis, bool kLeft, class Out>
void softmax_rows(const int32_t* acc, int ld_acc, const SoftmaxParams& p, Out* out, int ld_out,
                  int32_t* rowsum) {
  const int cols = p.cols;
  const int cols32 = (cols + 31) / 32 * 32;
  // zq * colsum_k once per call; per row a buffer of logits, then one of
  // exponentials. Rows in pairs: each pass runs for both rows before the
  // next, so a row's reductions and reciprocal (latency chains) overlap the
  // other row's vector work. Columns past the row's end up to cols32 hold
  // logit 0 and are masked out of the exponentials.
  alignas(64) int32_t zc[kMaxSimdCols];
  alignas(64) int32_t buf[2][kMaxSimdCols];
  alignas(64) int16_t ebuf[2][kMaxSimdCols];
  const __m512i zq = _mm512_set1_epi32(p.zq);
  for (int j = 0; j < cols32; j += 16)
    _mm512_store_si512(zc + j, _mm512_mullo_epi32(zq, _mm512_maskz_loadu_epi32(tail_mask(cols - j), p.colsum_k + j)));
  const __m512i count = _mm512_set1_epi32(kLeft ? -p.exp_shift : p.exp_shift);
  const __m512i neg_mult = _mm512_set1_epi16(static_cast<int16_t>(-p.exp_mult));
  const int64_t reach = int64_t{1} << (15 + p.exp_shift);  // |x| from which y = -32768
  const __m512i ones = _mm512_set1_epi16(1);
  // Pass 1: logits into b, their maximum.
  auto logits = [&](const int32_t* a, int32_t* b) {
    __m512i mx = _mm512_set1_epi32(INT32_MIN);
    int j = 0;
    for (; j + 16 <= cols; j += 16) {  // whole vectors: no mask (kmovw is a port-5 operation)
      const __m512i l = _mm512_sub_epi32(_mm512_loadu_si512(a + j), _mm512_load_si512(zc + j));
      _mm512_store_si512(b + j, l);
      mx = _mm512_max_epi32(mx, l);
    }
    for (; j < cols32; j += 16) {
      const __mmask16 k = tail_mask(cols - j);
      const __m512i l = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, a + j), _mm512_load_si512(zc + j));
      _mm512_store_si512(b + j, l);
      mx = _mm512_mask_max_epi32(mx, k, mx, l);
    }
    return _mm512_reduce_max_epi32(mx);
  };
  // Pass 2: exponentials into e (each 32 in pack order for the uint8
  // probabilities, see PackTables; in column order for the Log-Int-Softmax
  // weights), their sum (< kMaxSimdCols * 2^15).
  constexpr bool kPacked = !kLis;
  __mmask32 last = 0;  // the last 32's columns before the row's end, in e's order
  for (int c = 0; c < 32; ++c)
    if (cols32 - 32 + c < cols) last |= __mmask32{1} << (kPacked ? packed_word(c) : c);
  auto exps = [&](const int32_t* b, int32_t row_max, int16_t* e) {
    const __m512i mx = _mm512_set1_epi32(row_max);
    const __m512i lo = _mm512_set1_epi32(static_cast<int32_t>(std::max<int64_t>(int64_t{row_max} - reach, INT32_MIN)));
    __m512i sumv = _mm512_setzero_si512();
    for (int j = 0; j < cols32; j += 32) {
      __m512i v = exp32<kLeft, kPacked>(_mm512_load_si512(b + j), _mm512_load_si512(b + j + 16), lo, mx, count, neg_mult);
      if (j + 32 > cols) v = _mm512_maskz_mov_epi16(last, v);
      _mm512_store_si512(e + j, v);
      sumv = _mm512_dpwssd_epi32(sumv, v, ones);
    }
    return int64_t{_mm512_reduce_add_epi32(sumv)};
  };
  // Pass 3: outputs; returns their sum.
  auto outputs = [&](const int16_t* e, int64_t sum, Out* o) {
    __m512i total = _mm512_setzero_si512();
    if constexpr (kLis) {
      // 2 * sum + e < 2^31 (the static_assert on kMaxSimdCols).
      const __m512i two_sum = _mm512_set1_epi32(static_cast<int32_t>(2 * sum));
      for_vectors(cols, [&](int j, __mmask16 k) {
        // Exponentials of 0 past the row's end give weight 0.
        const __m512i w = lis_weights16(_mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(e + j))), two_sum);
        _mm512_mask_cvtepi32_storeu_epi16(o + j, k, w);
        total = _mm512_add_epi32(total, w);
      });
    } else {
      // t = floor(e * R / 2^16) < 2^15, so t + 2^(s-1) fits 16 bits for
      // s <= 16; from s = 16 on every p is 0 (t < 2^(s-1)), which the
      // shift by 16 gives.
      const SoftmaxRecip r = softmax_recip(sum);
      const __m512i rv = _mm512_set1_epi16(static_cast<int16_t>(r.mult));
      const __m512i half = _mm512_set1_epi16(static_cast<int16_t>(r.shift <= 16 ? 1 << (r.shift - 1) : 0));
      const __m512i s = _mm512_set1_epi16(static_cast<int16_t>(std::min(r.shift, 16)));
      auto prob = [&](int j) {
        return _mm512_srlv_epi16(_mm512_add_epi16(_mm512_mulhi_epu16(_mm512_load_si512(e + j), rv), half), s);
      };
      // 64 columns at a time: one vpackuswb and one vpermb for the bytes
      // (packus_columns), one vpsadbw for their sum. p <= 255 packs exactly;
      // past the row's end e = 0 (up to cols32), so p = 0 there.
      auto add_bytes = [&](__m512i b) { total = _mm512_add_epi64(total, _mm512_sad_epu8(b, _mm512_setzero_si512())); };
      int j = 0;
      for (; j + 64 <= cols; j += 64) {
        const __m512i b = packus_columns(prob(j), prob(j + 32));
        _mm512_storeu_si512(o + j, b);
        add_bytes(b);
      }
      if (j + 32 < cols) {
        const __m512i b = packus_columns(prob(j), prob(j + 32));
        _mm512_mask_storeu_epi8(o + j, (__mmask64{1} << (cols - j)) - 1, b);
        add_bytes(b);
        j += 64;
      }
      if (j < cols) {
        const __m512i v = to_columns(prob(j));
        _mm512_mask_cvtepi16_storeu_epi8(o + j, static_cast<__mmask32>((uint64_t{1} << (cols - j)) - 1), v);
        add_bytes(_mm512_packus_epi16(v, _mm512_setzero_si512()));
      }
      return static_cast<int32_t>(_mm512_reduce_add_epi64(total));
    }
    return _mm512_reduce_add_epi32(total);
  };
  for (int i = 0; i < p.rows; i += 2) {
    const int n = std::min(2, p.rows - i);
    int32_t row_max[2];
    int64_t sum[2];
    for (int r = 0; r < n; ++r) row_max[r] = logits(acc + static_cast<int64_t>(i + r) * ld_acc, buf[r]);
    for (int r = 0; r < n; ++r) sum[r] = exps(buf[r], row_max[r], ebuf[r]);
    for (int r = 0; r < n; ++r) rowsum[i + r] = outputs(ebuf[r], sum[r], out + static_cast<int64_t>(i + r) * ld_out);
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

// x_c = (q_c - zp) << alpha_c for 16 channels (0 in the lanes outside k).
inline __m512i load_x(__mmask16 k, const int16_t* q, const uint8_t* alpha, __m512i zp) {
  const __m512i qv = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(k, q));
  const __m512i av = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, alpha));
  return _mm512_maskz_sllv_epi32(k, _mm512_sub_epi32(qv, zp), av);
}

struct NormRow {
  __m512i c, sum, inv, half;
  __m512i lo, hi;  // the stream's clamp [qmin, qmax]
  __m128i out_shift;
};

// clamp(((C x - S) * inv + 2^31) >> 32) * gamma + beta) >> (16 + g), lo, hi)
// for 8 channels in 64-bit lanes. |t| <= 2^17 sqrt(C) (|C x - S| <=
// sqrt(C D), sigma >= sqrt(D) - 1), so t * gamma is one vpmuldq.
inline __m512i norm8(__m512i x64, __m512i gamma64, __m512i beta, const NormRow& r) {
  const __m512i u = _mm512_sub_epi64(_mm512_mul_epi32(x64, r.c), r.sum);
  const __m512i t = _mm512_srai_epi64(_mm512_add_epi64(_mm512_mullo_epi64(u, r.inv), r.half), 32);
  const __m512i y = _mm512_max_epi64(_mm512_sra_epi64(_mm512_add_epi64(_mm512_mul_epi32(t, gamma64), beta), r.out_shift), r.lo);
  return _mm512_min_epi64(y, r.hi);
}

// The 16-bit requantizations (requant_u8, gelu_u8), 32 columns per
// operation in pack order (see PackTables): t = sat16((a + b) >> s) from two
// int32 vectors (one vpackssdw), and
// the output's rounding shift (v + 2^(r-1)) >> r as mulhrs(v,
// 2^(15-r)) for r >= 1 (exact, no overflow). For r = 0 it is mulhrs(v,
// 2^15 - 1), which is v for v in [-16383, 16384] and differs by one only
// beyond, where zp + v is outside [0, 255] either way.
struct Front32 {
  __mmask16 k_lo, k_hi;
  __mmask32 k;
  __m512i bias_lo, bias_hi, s_lo, s_hi;  // int32
};
inline Front32 front32(const int32_t* bias, const int32_t* in_shift, int w) {
  Front32 f;
  f.k_lo = tail_mask(w);
  f.k_hi = tail_mask(w - 16);
  f.k = w >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << w) - 1);
  f.bias_lo = _mm512_maskz_loadu_epi32(f.k_lo, bias);
  f.bias_hi = _mm512_maskz_loadu_epi32(f.k_hi, bias + 16);
  f.s_lo = _mm512_maskz_loadu_epi32(f.k_lo, in_shift);
  f.s_hi = _mm512_maskz_loadu_epi32(f.k_hi, in_shift + 16);
  return f;
}
// a - sub (kSub) or a, plus b, shifted and packed (pack order). kFull: all
// 32 columns are there, and the loads need no mask (a masked load is one
// vector operation more than a load on Intel's cores).
template <bool kSub, bool kFull>
inline __m512i t16(const int32_t* a, __m512i sub, const Front32& f) {
  __m512i a0 = kFull ? _mm512_loadu_si512(a) : _mm512_maskz_loadu_epi32(f.k_lo, a);
  __m512i a1 = kFull ? _mm512_loadu_si512(a + 16) : _mm512_maskz_loadu_epi32(f.k_hi, a + 16);
  if constexpr (kSub) {
    a0 = _mm512_sub_epi32(a0, sub);
    a1 = _mm512_sub_epi32(a1, sub);
  }
  const __m512i t0 = _mm512_srav_epi32(_mm512_add_epi32(a0, f.bias_lo), f.s_lo);
  const __m512i t1 = _mm512_srav_epi32(_mm512_add_epi32(a1, f.bias_hi), f.s_hi);
  return _mm512_packs_epi32(t0, t1);
}

struct Out32 {
  __m512i down, zp;  // int16 in pack order: 2^(15 - r) (2^15 - 1 for r = 0), zero points
};
inline Out32 out32(const int16_t* out_shift, const uint8_t* zero_point, __mmask32 k) {
  const __m512i r = _mm512_maskz_loadu_epi16(k, out_shift);
  const __m512i down = _mm512_sllv_epi16(_mm512_set1_epi16(1), _mm512_sub_epi16(_mm512_set1_epi16(15), r));
  return {to_packed(_mm512_mask_mov_epi16(down, _mm512_cmpeq_epi16_mask(r, _mm512_setzero_si512()), _mm512_set1_epi16(32767))),
          to_packed(_mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(k, zero_point)))};
}
// zp + ((v + 2^(r-1)) >> r), saturated to int16 (the clamp to [0, 255] follows).
inline __m512i out_step(__m512i v, const Out32& c) { return _mm512_adds_epi16(_mm512_mulhrs_epi16(v, c.down), c.zp); }
// clamp(zp + ((v + 2^(r-1)) >> r), 0, 255) stored as 32 bytes (k of them).
inline void store_out32(uint8_t* o, __m512i v, const Out32& c, __mmask32 k) {
  _mm512_mask_cvtusepi16_storeu_epi8(o, k, _mm512_max_epi16(to_columns(out_step(v, c)), _mm512_setzero_si512()));
}
// The same for two rows: one vpackuswb (signed saturation to [0, 255] is
// the clamp) and one vpermb for both, where each row alone takes a vpermw,
// a max and a two-operation vpmovuswb.
template <bool kFull>
inline void store_out32x2(uint8_t* o0, uint8_t* o1, __m512i v0, __m512i v1, const Out32& c, __mmask32 k) {
  const __m512i b = packus_columns(out_step(v0, c), out_step(v1, c));
  if constexpr (kFull) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o0), _mm512_castsi512_si256(b));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o1), _mm512_extracti64x4_epi64(b, 1));
  } else {
    _mm256_mask_storeu_epi8(o0, k, _mm512_castsi512_si256(b));
    _mm256_mask_storeu_epi8(o1, k, _mm512_extracti64x4_epi64(b, 1));
  }
}
// Rows in pairs, a row's value before the output step being back(front(i)),
// then store_out32x2; a last odd row alone. Software-pipelined by one pair:
// the next pair's front is issued before this pair's back, so the
// out-of-order window holds two pairs' independent work rather than one
// pair's chain (GELU's is ~60 cycles).
template <bool kFull, class Front, class Back>
inline void store_rows32(int m, uint8_t* out, int ld_out, const Out32& c, __mmask32 k, Front&& front, Back&& back) {
  auto o = [&](int i) { return out + static_cast<int64_t>(i) * ld_out; };
  int i = 0;
  if (m >= 2) {
    auto a0 = front(0), a1 = front(1);
    for (; i + 4 <= m; i += 2) {
      const auto n0 = front(i + 2), n1 = front(i + 3);
      store_out32x2<kFull>(o(i), o(i + 1), back(a0), back(a1), c, k);
      a0 = n0;
      a1 = n1;
    }
    store_out32x2<kFull>(o(i), o(i + 1), back(a0), back(a1), c, k);
    i += 2;
  }
  if (i < m) store_out32(o(i), back(front(i)), c, k);
}

// GELU (quant.h's definition) in 16-bit lanes after the front end; the
// spline's 32 pieces are one vpermw per coefficient. One per-column shift
// puts |x| into 2^-12 units, after which the piece and position shifts are
// the same for every column.
struct GeluColumns {
  Front32 f;
  Out32 o;
  __m512i m, cap, to12, back, om;  // int16, pack order
};

inline GeluColumns gelu_columns(const GeluU8Params& p, int w) {
  GeluColumns c;
  c.f = front32(p.bias, p.in_shift, w);
  c.o = out32(p.out_shift, p.zero_point, c.f.k);
  const __m512i one = _mm512_set1_epi16(1);
  const __m512i e = to_packed(_mm512_maskz_loadu_epi16(c.f.k, p.frac_cut));
  c.m = to_packed(_mm512_maskz_loadu_epi16(c.f.k, p.in_mult));
  c.back = _mm512_sllv_epi16(one, _mm512_sub_epi16(_mm512_set1_epi16(12), e));  // 2^(12 - e)
  c.cap = _mm512_sub_epi16(c.back, one);
  c.to12 = _mm512_add_epi16(e, _mm512_set1_epi16(2));
  c.om = to_packed(_mm512_maskz_loadu_epi16(c.f.k, p.out_mult));
  return c;
}

template <bool kFull>
void gelu_rows(int m, const int32_t* acc, int ld_acc, const GeluColumns& c, const GeluSpline& sp, uint8_t* out,
               int ld_out) {
  const __m512i c0 = _mm512_slli_epi16(_mm512_loadu_si512(sp.c0), 3), c1 = _mm512_slli_epi16(_mm512_loadu_si512(sp.c1), 3);
  const __m512i zero = _mm512_setzero_si512();
  const __m512i low9 = _mm512_set1_epi16(511);
  // A row's steps up to the spline's piece and position, then the rest.
  struct In {
    __m512i x, piece, u;
  };
  auto front = [&](int i) {
    const __m512i x = _mm512_mulhrs_epi16(t16<false, kFull>(acc + static_cast<int64_t>(i) * ld_acc, zero, c.f), c.m);
    const __m512i ax = _mm512_sllv_epi16(_mm512_min_epi16(_mm512_abs_epi16(x), c.cap), c.to12);
    return In{x, _mm512_srli_epi16(ax, 9), _mm512_slli_epi16(_mm512_and_si512(ax, low9), 6)};
  };
  auto back = [&](const In& a) {
    const __m512i y = _mm512_add_epi16(_mm512_permutexvar_epi16(a.piece, c0),
                                       _mm512_mulhrs_epi16(a.u, _mm512_permutexvar_epi16(a.piece, c1)));
    const __m512i g = _mm512_adds_epi16(_mm512_mulhrs_epi16(y, c.back), _mm512_max_epi16(a.x, zero));
    return _mm512_mulhrs_epi16(g, c.om);
  };
  store_rows32<kFull>(m, out, ld_out, c.o, c.f.k, front, back);
}

struct ResidualBlock {
  __mmask16 k;
  Dyadic16 branch, skip;
  Folded skip_c;
  const int32_t* bias;  // row i at bias + i * bias_stride
  int64_t bias_stride;
};

// kSat: the stream's range is int16's own ([-32768, 32767], every 16-bit
// stream), so the saturating narrowing store is the clamp (two operations
// fewer per 16 lanes). kFull: all 16 columns are there (no masks).
template <bool kHi, bool kSat, bool kFull>
void residual_block(int m, const int32_t* acc, int ld_acc, const ResidualParams& p, const ResidualBlock& b,
                    bool skip, int16_t* stream, int ld_stream) {
  const __m512i zp_out = _mm512_set1_epi32(p.zp_out);
  const __m512i qmin = _mm512_set1_epi32(p.qmin_out);
  const __m512i qmax = _mm512_set1_epi32(p.qmax_out);
  Folded bias_c = fold(b.branch, _mm512_maskz_loadu_epi32(b.k, b.bias), false);
  for (int i = 0; i < m; ++i) {
    int16_t* s = stream + static_cast<int64_t>(i) * ld_stream;
    if (b.bias_stride != 0 && i > 0) bias_c = fold(b.branch, _mm512_maskz_loadu_epi32(b.k, b.bias + i * b.bias_stride), false);
    const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc;
    const __m512i x = kFull ? _mm512_loadu_si512(a) : _mm512_maskz_loadu_epi32(b.k, a);
    __m512i v = _mm512_add_epi32(zp_out, dyadic16<kHi>(x, b.branch, bias_c));
    if (skip) {
      const __m256i s16 = kFull ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s)) : _mm256_maskz_loadu_epi16(b.k, s);
      v = _mm512_add_epi32(v, dyadic16<kHi>(_mm512_cvtepi16_epi32(s16), b.skip, b.skip_c));
    }
    if constexpr (!kSat) v = _mm512_min_epi32(_mm512_max_epi32(v, qmin), qmax);
    const __m256i out = kSat ? _mm512_cvtsepi32_epi16(v) : _mm512_cvtepi32_epi16(v);
    if constexpr (kFull) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(s), out);
    } else {
      _mm256_mask_storeu_epi16(s, b.k, out);
    }
  }
}

}  // namespace

void avx512_requant_u8(int m, int n, const int32_t* acc, int ld_acc, const RequantU8Params& p,
                       uint8_t* out, int ld_out) {
  if (m <= 0 || n <= 0) return;
  for (int j0 = 0; j0 < n; j0 += 32) {
    const Front32 f = front32(p.bias + j0, p.in_shift + j0, n - j0);
    const Out32 o = out32(p.out_shift + j0, p.zero_point + j0, f.k);
    const __m512i mult = to_packed(_mm512_maskz_loadu_epi16(f.k, p.mult + j0));
    const int32_t* row_sub = p.row_sub;
    with_flags(n - j0 >= 32, row_sub != nullptr, [&](auto full, auto sub) {
      constexpr bool kFull = decltype(full)::value, kSub = decltype(sub)::value;
      auto row = [&](int i) {
        const int32_t* a = acc + static_cast<int64_t>(i) * ld_acc + j0;
        const __m512i t = t16<kSub, kFull>(a, kSub ? _mm512_set1_epi32(row_sub[i]) : _mm512_setzero_si512(), f);
        return _mm512_mulhrs_epi16(t, mult);
      };
      store_rows32<kFull>(m, out + j0, ld_out, o, f.k, row, [](__m512i v) { return v; });
    });
  }
}

void avx512_gelu_u8(int m, int n, const int32_t* acc, int ld_acc, const GeluU8Params& p, uint8_t* out,
                    int ld_out) {
  if (m <= 0 || n <= 0) return;
  for (int j0 = 0; j0 < n; j0 += 32)
    with_flag(n - j0 >= 32, [&](auto full) {
      gelu_rows<decltype(full)::value>(m, acc + j0, ld_acc, gelu_columns(p.from(j0), n - j0), *p.spline, out + j0, ld_out);
    });
}

void avx512_residual_add(int m, int n, const int32_t* acc, int ld_acc, const ResidualParams& p,
                         int16_t* stream, int ld_stream) {
  if (m <= 0 || n <= 0) return;
  const bool skip = p.skip_mult != nullptr;
  for (int j0 = 0; j0 < n; j0 += 16) {
    ResidualBlock b;
    b.k = tail_mask(n - j0);
    b.branch = load_dyadic(b.k, p.branch_mult + j0, p.branch_shift + j0);
    b.skip = skip ? load_dyadic(b.k, p.skip_mult + j0, p.skip_shift + j0) : b.branch;
    // Skip term: (s - zp_in) * mult + rnd = s * mult + (rnd - zp_in * mult).
    b.skip_c = fold(b.skip, _mm512_set1_epi32(p.zp_in), true);
    b.bias = p.bias + j0;
    b.bias_stride = p.bias_ld;
    const bool hi = b.branch.hi && (!skip || b.skip.hi);
    with_flags(hi, p.qmin_out == INT16_MIN && p.qmax_out == INT16_MAX, [&](auto k_hi, auto k_sat) {
      with_flag(n - j0 >= 16, [&](auto full) {
        residual_block<decltype(k_hi)::value, decltype(k_sat)::value, decltype(full)::value>(m, acc + j0, ld_acc, p, b,
                                                                                             skip, stream + j0, ld_stream);
      });
    });
  }
}

// 32 columns per operation: t in pack order (t16), put back in column order
// by pack_order.
void avx512_residual_add16(int m, int n, const int32_t* acc, int ld_acc, const Residual16Params& p, int16_t* stream,
                           int ld_stream) {
  if (m <= 0 || n <= 0) return;
  for (int j0 = 0; j0 < n; j0 += 32) {
    const Front32 f = front32(p.bias + j0, p.in_shift + j0, n - j0);
    const __m512i mult = _mm512_maskz_loadu_epi16(f.k, p.mult + j0);
    with_flag(n - j0 >= 32, [&](auto full) {
      constexpr bool kFull = decltype(full)::value;
      for (int i = 0; i < m; ++i) {
        const __m512i t = pack_order(t16<false, kFull>(acc + static_cast<int64_t>(i) * ld_acc + j0, _mm512_setzero_si512(), f));
        const __m512i b = _mm512_adds_epi16(t, _mm512_mulhrs_epi16(t, mult));
        int16_t* s = stream + static_cast<int64_t>(i) * ld_stream + j0;
        if constexpr (kFull) {
          _mm512_storeu_si512(s, _mm512_adds_epi16(_mm512_loadu_si512(s), b));
        } else {
          _mm512_mask_storeu_epi16(s, f.k, _mm512_adds_epi16(_mm512_maskz_loadu_epi16(f.k, s), b));
        }
      }
    });
  }
}

namespace {
// The stream LayerNorm's second pass in double precision, exactly. With
// u = C x - S and |u| * inv <= 2^53 - 2^32 (layernorm_f64_exact: deviations of up
// to ~32 standard deviations), every value is an integer multiple of a power
// of two that fits 53 bits, so each FMA's exact result is representable and
// nothing rounds:
//   v = u * (inv / 2^32) + 1/2 = (u * inv + 2^31) / 2^32,  t = floor(v)
//   (|t| < 2^21), w = t * (gamma / 2^s) + beta / 2^s = (t * gamma + beta) / 2^s
//   (|t * gamma + beta| < 2^51 + 2^52), out = clamp(floor(w), lo, hi)
// which is the reference's integer formula term by term (floor commutes with
// a clamp to integers). The stream's alpha shift and zero point fold into
// per-channel factors (C x = q C 2^alpha - C 2^alpha zp), so the pass takes
// about 12 vector operations per 8 channels where the int64 form (norm8,
// with load_x) takes 20. Rows outside the bound (near-constant rows, where
// inv is large) take norm8.
// 8 channels: q (int16 widened to double) to the clamped output, as int32.
// u = q * C 2^alpha - C 2^alpha zp - S = C x - S (integers below 2^41).
inline __m256i norm8_f64(__m512d q, const F64Factors& t, size_t c, __m512d sum, __m512d inv, __m512d lo,
                         __m512d hi) {
  const __m512d u = _mm512_sub_pd(_mm512_fmsub_pd(q, _mm512_loadu_pd(t.ca + c), _mm512_loadu_pd(t.cz + c)), sum);
  const __m512d v = _mm512_roundscale_pd(_mm512_fmadd_pd(u, inv, _mm512_set1_pd(0.5)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512d w = _mm512_min_pd(_mm512_max_pd(_mm512_fmadd_pd(v, _mm512_loadu_pd(t.gamma + c), _mm512_loadu_pd(t.beta + c)), lo), hi);
  return _mm512_cvt_roundpd_epi32(w, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}

// The uint8 LayerNorm's second pass for 32 channels from c on, in pack order
// (see LayerNormPrepared): u = C x - S in the even and the odd channels'
// 32-bit lanes straight from the raw q vector (vpdpwssd of q with C 2^alpha
// onto -zp C 2^alpha - S), u' = u >> r (or << -r), then in 16-bit lanes
// t = mulhrs(u', R), p = mulhrs(t, G), (p + B) >> e; the int16 additions
// saturate, which for e <= 7 clamps the same as the reference's clamp to
// [0, 255] after the shift.
struct U8Row {
  __m512i neg_s, shift, mult, e;
  bool left;
};

template <bool kFull>
inline __m512i norm32_u8(const int16_t* q, __mmask32 k, const LayerNormPrepared& t, size_t c, const U8Row& r) {
  const __m512i qv = kFull ? _mm512_loadu_si512(q) : _mm512_maskz_loadu_epi16(k, q);
  __m512i ue = _mm512_dpwssd_epi32(_mm512_add_epi32(_mm512_loadu_si512(t.zeven.data() + c / 2), r.neg_s), qv,
                                   _mm512_loadu_si512(t.even.data() + c / 2));
  __m512i uo = _mm512_dpwssd_epi32(_mm512_add_epi32(_mm512_loadu_si512(t.zodd.data() + c / 2), r.neg_s), qv,
                                   _mm512_loadu_si512(t.odd.data() + c / 2));
  if (r.left) {
    ue = _mm512_sllv_epi32(ue, r.shift);
    uo = _mm512_sllv_epi32(uo, r.shift);
  } else {
    ue = _mm512_srav_epi32(ue, r.shift);
    uo = _mm512_srav_epi32(uo, r.shift);
  }
  const __m512i tv = _mm512_mulhrs_epi16(_mm512_packs_epi32(ue, uo), r.mult);
  const __m512i pv = _mm512_mulhrs_epi16(tv, _mm512_loadu_si512(t.gp.data() + c));
  return _mm512_srav_epi16(_mm512_adds_epi16(pv, _mm512_loadu_si512(t.bp.data() + c)), r.e);
}

// The vector LayerNorm for one parameter set: stats() then out() per row.
class LayerNormRows {
 public:
  // For the uint8 output.
  explicit LayerNormRows(const LayerNormParams& p) : LayerNormRows(p, false, 0, 0) {}
  // For a stream's output, clamped to [lo, hi].
  LayerNormRows(const LayerNormParams& p, int32_t lo, int32_t hi) : LayerNormRows(p, true, lo, hi) {}

  NormStats stats(const int16_t* q) const {
    // |x| < 2^19: 2048 vectors per int32 lane before a flush into int64.
    int64_t sum = 0;
    __m512i s32 = _mm512_setzero_si512();
    __m512i sq = _mm512_setzero_si512();
    __m512i lo = _mm512_set1_epi32(INT32_MAX), hi = _mm512_set1_epi32(INT32_MIN);
    int in_lane = 0;
    for_vectors(c_count_, [&](int c, __mmask16 k) {
      const __m512i x = load_x(k, q + c, p_.in.alpha + c, zp_);
      const __m512i xo = _mm512_srli_epi64(x, 32);
      if (track_) {
        lo = _mm512_mask_min_epi32(lo, k, lo, x);
        hi = _mm512_mask_max_epi32(hi, k, hi, x);
      }
      s32 = _mm512_add_epi32(s32, x);
      sq = _mm512_add_epi64(sq, _mm512_add_epi64(_mm512_mul_epi32(x, x), _mm512_mul_epi32(xo, xo)));
      if (++in_lane == 2048 || c + 16 >= c_count_) {
        sum += _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(s32)),
                                                        _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(s32, 1))));
        s32 = _mm512_setzero_si512();
        in_lane = 0;
      }
    });
    const int64_t sum_sq = _mm512_reduce_add_epi64(sq);
    const int64_t d = int64_t{c_count_} * sum_sq - sum * sum + p_.eps_term;
    return {sum, isqrt_fast(static_cast<uint64_t>(d)), track_ ? _mm512_reduce_min_epi32(lo) : 0,
            track_ ? _mm512_reduce_max_epi32(hi) : 0};
  }

  // uint8 outputs of one row, 64 channels per store.
  void out(const int16_t* q, const NormStats& st, uint8_t* o) const {
    const LayerNormPrepared& t = *p_.prepared;
    const LayerNormRowScale rs = layernorm_row_scale(t.u8, st.sigma);
    U8Row r;
    r.neg_s = _mm512_set1_epi32(static_cast<int32_t>(-st.sum));
    r.left = rs.shift < 0;
    r.shift = _mm512_set1_epi32(r.left ? -rs.shift : rs.shift);
    r.mult = _mm512_set1_epi16(static_cast<int16_t>(rs.mult));
    r.e = u8_e_;
    const __m512i order = u8_order_;
    // The 64 outputs from channel c on, in channel order; loads masked by
    // k_lo / k_hi unless full.
    auto block = [&](auto full, int c, __mmask32 k_lo, __mmask32 k_hi) {
      constexpr bool kFull = decltype(full)::value;
      const auto cc = static_cast<size_t>(c);
      return _mm512_permutexvar_epi8(order, _mm512_packus_epi16(norm32_u8<kFull>(q + c, k_lo, t, cc, r),
                                                                 norm32_u8<kFull>(q + c + 32, k_hi, t, cc + 32, r)));
    };
    int c = 0;
    for (; c + 64 <= c_count_; c += 64) _mm512_storeu_si512(o + c, block(std::true_type{}, c, 0, 0));
    if (c < c_count_) {
      const int w = c_count_ - c;
      const auto k_lo = w >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint64_t{1} << w) - 1);
      const auto k_hi = w <= 32 ? __mmask32{0} : static_cast<__mmask32>((uint64_t{1} << (w - 32)) - 1);
      _mm512_mask_storeu_epi8(o + c, static_cast<__mmask64>((uint64_t{1} << w) - 1), block(std::false_type{}, c, k_lo, k_hi));
    }
  }

  // int16 outputs of one row onto a stream.
  void out(const int16_t* q, const NormStats& st, int16_t* o) const {
    const int64_t inv = st.sigma ? inv_fast(st.sigma) : 0;
    if (layernorm_f64_exact(*p_.prepared, st.sum, inv, st.x_min, st.x_max)) {
      const __m512d sv = _mm512_set1_pd(static_cast<double>(st.sum));
      const __m512d iv = _mm512_set1_pd(static_cast<double>(inv) * 0x1p-32);
      const F64Factors f(*p_.prepared);
      const __m512d lo = lo_, hi = hi_;
      for_vectors(c_count_, [&](int c, __mmask16 k) {
        const __m512i qv = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(k, q + c));
        const auto cc = static_cast<size_t>(c);
        const __m256i y_lo = norm8_f64(_mm512_cvtepi32_pd(_mm512_castsi512_si256(qv)), f, cc, sv, iv, lo, hi);
        const __m256i y_hi = norm8_f64(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(qv, 1)), f, cc + 8, sv, iv, lo, hi);
        const __m512i y = _mm512_inserti64x4(_mm512_castsi256_si512(y_lo), y_hi, 1);
        _mm256_mask_storeu_epi16(o + c, k, _mm512_cvtepi32_epi16(y));
      });
      return;
    }
    NormRow r = r_;
    r.sum = _mm512_set1_epi64(st.sum);
    r.inv = _mm512_set1_epi64(inv);
    for_vectors(c_count_, [&](int c, __mmask16 k) {
      const __m512i x = load_x(k, q + c, p_.in.alpha + c, zp_);
      const __m512i g = _mm512_maskz_loadu_epi32(k, p_.gamma + c);
      const __m512i y_lo = norm8(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(x)),
                                 _mm512_cvtepi32_epi64(_mm512_castsi512_si256(g)),
                                 _mm512_maskz_loadu_epi64(static_cast<__mmask8>(k), p_.beta + c), r);
      const __m512i y_hi = norm8(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(x, 1)),
                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(g, 1)),
                                 _mm512_maskz_loadu_epi64(static_cast<__mmask8>(k >> 8), p_.beta + c + 8), r);
      const __m256i y16 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi64_epi16(y_lo)),
                                                  _mm512_cvtepi64_epi16(y_hi), 1);
      _mm256_mask_storeu_epi16(o + c, k, y16);
    });
  }

 private:
  const LayerNormParams& p_;
  const int c_count_;
  const __m512i zp_;
  const bool track_;
  const __m512d lo_, hi_;
  NormRow r_;
  __m512i u8_e_;      // the uint8 output's shift e
  __m512i u8_order_;  // vpermb: norm32_u8's vpackuswb back to channels

  // stream: the output is a stream's int16, clamped to [lo, hi] (only the
  // stream's double pass needs wide rows' x range); else uint8.
  LayerNormRows(const LayerNormParams& p, bool stream, int32_t lo, int32_t hi)
      : p_(p), c_count_(p.channels), zp_(_mm512_set1_epi32(p.in.zero_point)),
        track_(stream && layernorm_tracks_range(p.channels)),
        lo_(_mm512_set1_pd(lo)), hi_(_mm512_set1_pd(hi)) {
    r_.c = _mm512_set1_epi64(c_count_);
    r_.half = _mm512_set1_epi64(int64_t{1} << 31);
    r_.lo = _mm512_set1_epi64(lo);
    r_.hi = _mm512_set1_epi64(hi);
    r_.out_shift = _mm_cvtsi32_si128(16 + p.g_shift);
    u8_e_ = _mm512_set1_epi16(static_cast<int16_t>(p.prepared->u8.out_shift));
    // vpackuswb's order (per 128-bit lane: eight words of the first vector,
    // eight of the second, each eight in pack order) back to channels.
    alignas(64) static constexpr uint8_t kOrder[64] = {
        0,  4,  1,  5,  2,  6,  3,  7,  16, 20, 17, 21, 18, 22, 19, 23, 32, 36, 33, 37, 34, 38,
        35, 39, 48, 52, 49, 53, 50, 54, 51, 55, 8,  12, 9,  13, 10, 14, 11, 15, 24, 28, 25, 29,
        26, 30, 27, 31, 40, 44, 41, 45, 42, 46, 43, 47, 56, 60, 57, 61, 58, 62, 59, 63};
    u8_order_ = _mm512_load_si512(kOrder);
  }
};

// Rows in groups: the statistics passes of a group's later rows run while
// the earlier rows' scalar square roots and reciprocals (long dependency
// chains) are in flight. DeiT-T rows (192 channels): 6% faster.
template <class Out>
void layernorm_groups(const LayerNormRows& ln, int rows, const int16_t* in, int ld_in, Out* out, int ld_out) {
  constexpr int kGroup = 4;
  for (int i = 0; i < rows; i += kGroup) {
    const int g = std::min(kGroup, rows - i);
    NormStats st[kGroup];
    for (int j = 0; j < g; ++j) st[j] = ln.stats(in + static_cast<int64_t>(i + j) * ld_in);
    for (int j = 0; j < g; ++j) ln.out(in + static_cast<int64_t>(i + j) * ld_in, st[j], out + static_cast<int64_t>(i + j) * ld_out);
  }
}

}  // namespace

void avx512_layernorm(int rows, const int16_t* in, int ld_in, const LayerNormParams& p,
                      uint8_t* out, int ld_out) {
  if (rows <= 0) return;
  if (!p.prepared->vector_ok || !p.prepared->u8_vector_ok) return layernorm_ref(rows, in, ld_in, p, out, ld_out);
  layernorm_groups(LayerNormRows(p), rows, in, ld_in, out, ld_out);
}

void avx512_layernorm_stream(int rows, const int16_t* in, int ld_in, const LayerNormParams& p, int32_t qmin,
                             int32_t qmax, int16_t* out, int ld_out) {
  if (rows <= 0) return;
  if (!p.prepared->vector_ok) return layernorm_stream_ref(rows, in, ld_in, p, qmin, qmax, out, ld_out);
  layernorm_groups(LayerNormRows(p, qmin, qmax), rows, in, ld_in, out, ld_out);
}

void avx512_softmax_u8(const int32_t* acc, int ld_acc, const SoftmaxParams& p, uint8_t* probs,
                       int ld_probs, int32_t* rowsum_p) {
  softmax_any<false>(acc, ld_acc, p, probs, ld_probs, rowsum_p);
}

void avx512_softmax_lis(const int32_t* acc, int ld_acc, const SoftmaxParams& p, int16_t* weights,
                        int ld_w, int32_t* rowsum_w) {
  softmax_any<true>(acc, ld_acc, p, weights, ld_w, rowsum_w);
}

// Rescaled rows in 8 int64 lanes: (x - corr) * r modulo 2^64 (vpmullq),
// rounded, shifted and truncated to int32 like the reference's casts.
void avx512_attn_lis_rescale(int m, int n, int32_t* acc, int ld_acc, int32_t zv, const int32_t* rowsum) {
  const __m512i half = _mm512_set1_epi64(int64_t{1} << 15);
  attn_lis_rescale_rows(m, acc, ld_acc, zv, rowsum, [&](int32_t* row, int64_t c, int64_t rr) {
    const __m512i corr = _mm512_set1_epi64(c);
    const __m512i r = _mm512_set1_epi64(rr);
    for (int j = 0; j < n; j += 8) {
      const auto k = static_cast<__mmask8>(tail_mask(n - j));
      const __m512i x = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, row + j));
      const __m512i prod = _mm512_mullo_epi64(_mm512_sub_epi64(x, corr), r);
      _mm512_mask_cvtepi64_storeu_epi32(row + j, k, _mm512_srai_epi64(_mm512_add_epi64(prod, half), 16));
    }
  });
}

// x ^ 0x80 is x - 128 as int8; the row sum of k - 128 is vpsadbw's sum of
// the uint8 bytes less 128 per value.
void avx512_attn_kv_s8(int tokens, int n, const uint8_t* k, const uint8_t* v, int ld, int8_t* k_s8, int8_t* v_s8,
                       int32_t* colsum_k) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  attn_kv_rows(tokens, n, k, v, ld, k_s8, v_s8, colsum_k, [&](const uint8_t* kr, const uint8_t* vr, int8_t* kd, int8_t* vd) {
    __m512i sums = _mm512_setzero_si512();
    for (int d = 0; d < n; d += 64) {
      const auto mask = static_cast<__mmask64>(n - d >= 64 ? ~0ull : (1ull << (n - d)) - 1);
      const __m512i kv = _mm512_maskz_loadu_epi8(mask, kr + d);
      sums = _mm512_add_epi64(sums, _mm512_sad_epu8(kv, _mm512_setzero_si512()));
      _mm512_mask_storeu_epi8(kd + d, mask, _mm512_xor_si512(kv, flip));
      _mm512_mask_storeu_epi8(vd + d, mask, _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, vr + d), flip));
    }
    return static_cast<int32_t>(_mm512_reduce_add_epi64(sums)) - 128 * n;
  });
}

}  // namespace vitint::kernels::detail
