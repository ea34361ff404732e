// AVX-512 VNNI GEMMs: vpdpbusd (uint8 x int8, 4 k-values per int32 lane) and
// vpdpwssd (int16 x int16, 2 k-values per lane). Neither saturates, so the
// int32 sums equal the reference's (modulo 2^32, like any int32 sum).
//
// Packed B: panels of 64 columns (the last one narrower, padded with zero
// columns to a multiple of 16); inside a panel of width w, k-group g holds
// w columns x 4 bytes (4 int8 k-values, or 2 int16 ones) so that one zmm
// load yields 16 columns of one group. k is zero-padded to whole groups.
//
// The micro-kernel keeps MR x NV zmm accumulators (6 x 4: 6 rows x 64
// columns), broadcasts 4 bytes of each A row per group straight from A
// (no A packing), and walks k innermost. All of A's rows stream past one B
// micro-panel (kKGroups x 256 bytes, L1/L2-resident; at most 64 KiB,
// which measured as fast as smaller blocks and saves C passes for k > 1024).
// GCC 12 flags the _mm512_undefined_epi32() inside many AVX-512 intrinsics as
// maybe-uninitialized once they are inlined (GCC PR 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>

#include "../gemm_internal.h"

namespace vitint::kernels::detail {
namespace {

constexpr int kPanel = 64;     // columns per packed panel (4 zmm)
constexpr int kMr = 6;         // rows per micro-kernel call
constexpr int kKGroups = 256;  // k-groups per cache block (1024 int8 k-values)

struct Tile {
  const uint8_t* a;     // first A byte of the block's k range, row i0
  ptrdiff_t lda_bytes;  // A row stride in bytes
  int groups;           // whole 4-byte A groups in this k block
  int tail_bytes;       // bytes of a final partial group (0..3), zero-extended
  const int8_t* b;      // packed panel at this k block
  ptrdiff_t b_stride;   // bytes per k-group in the panel (panel width x 4)
  int32_t* c;           // C at (i0, j0)
  ptrdiff_t ldc;
  __mmask16 mask[4];  // valid columns of each zmm
  bool accumulate;    // add to C (a later k block) instead of overwriting
};

template <bool kS16>
inline __m512i dot(__m512i acc, __m512i a, __m512i b) {
  if constexpr (kS16) {
    return _mm512_dpwssd_epi32(acc, a, b);
  } else {
    return _mm512_dpbusd_epi32(acc, a, b);
  }
}

inline int32_t load_group(const uint8_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// Per-row macros for VITINT_EACH_ROW (gemm_internal.h): the accumulators are
// named variables c<row><vector>.
#define VITINT_ACC_ROW(r) \
  __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0
#define VITINT_ROW(r)                                              \
  if constexpr (MR > r) {                                          \
    const __m512i av = _mm512_set1_epi32(load_group(a + (r)*lda)); \
    c##r##0 = dot<kS16>(c##r##0, av, b0);                          \
    if constexpr (NV > 1) c##r##1 = dot<kS16>(c##r##1, av, b1);    \
    if constexpr (NV > 2) c##r##2 = dot<kS16>(c##r##2, av, b2);    \
    if constexpr (NV > 3) c##r##3 = dot<kS16>(c##r##3, av, b3);    \
  }
// Panels whose every column is valid: the accumulators go straight to C
// (added to it for a later k block).
#define VITINT_STORE_C_ONE(r, v)                                                  \
  {                                                                               \
    int32_t* cv = t.c + (r)*t.ldc + 16 * (v);                                     \
    if (t.accumulate) c##r##v = _mm512_add_epi32(c##r##v, _mm512_loadu_si512(cv)); \
    _mm512_storeu_si512(cv, c##r##v);                                             \
  }
#define VITINT_STORE_C(r)                           \
  if constexpr (MR > r) {                           \
    VITINT_STORE_C_ONE(r, 0);                       \
    if constexpr (NV > 1) VITINT_STORE_C_ONE(r, 1); \
    if constexpr (NV > 2) VITINT_STORE_C_ONE(r, 2); \
    if constexpr (NV > 3) VITINT_STORE_C_ONE(r, 3); \
  }
#define VITINT_STORE_ROW(r)                                         \
  if constexpr (MR > r) {                                           \
    _mm512_store_si512(out[r], c##r##0);                            \
    if constexpr (NV > 1) _mm512_store_si512(out[r] + 16, c##r##1); \
    if constexpr (NV > 2) _mm512_store_si512(out[r] + 32, c##r##2); \
    if constexpr (NV > 3) _mm512_store_si512(out[r] + 48, c##r##3); \
  }

template <bool kS16, int MR, int NV>
void micro_kernel(const Tile& t) {
  static_assert(MR >= 1 && MR <= 6 && NV >= 1 && NV <= 4, "micro-tile is at most 6 x 4 zmm");
  VITINT_EACH_ROW(VITINT_ACC_ROW);
  const uint8_t* a = t.a;
  const int8_t* b = t.b;
  ptrdiff_t lda = t.lda_bytes;
  int groups = t.groups;
  // A may end inside the last group (B is zero-padded there): its bytes go
  // to a zero-padded copy that a second pass of the same loop reads. A
  // separate tail step would make GCC spill the accumulators in the loop.
  int32_t tail[MR];
  for (int pass = t.tail_bytes != 0 ? 2 : 1; pass > 0; --pass) {
    for (int g = 0; g < groups; ++g) {
      const __m512i b0 = _mm512_loadu_si512(b);
      const __m512i b1 = NV > 1 ? _mm512_loadu_si512(b + 64) : _mm512_setzero_si512();
      const __m512i b2 = NV > 2 ? _mm512_loadu_si512(b + 128) : _mm512_setzero_si512();
      const __m512i b3 = NV > 3 ? _mm512_loadu_si512(b + 192) : _mm512_setzero_si512();
      VITINT_EACH_ROW(VITINT_ROW);
      a += 4;
      b += t.b_stride;
    }
    if (pass == 2) {
      // Masked-off bytes are neither read (no fault past A's end) nor kept.
      const auto mask = static_cast<__mmask16>((1u << t.tail_bytes) - 1u);
      for (int r = 0; r < MR; ++r) {
        tail[r] = _mm_cvtsi128_si32(_mm_maskz_loadu_epi8(mask, a + r * lda));
      }
      a = reinterpret_cast<const uint8_t*>(tail);
      lda = 4;
      groups = 1;
    }
  }
  if (t.mask[NV - 1] == 0xFFFF) {
    VITINT_EACH_ROW(VITINT_STORE_C);
    return;
  }
  // A partial panel: masked loads and stores of C from a local block (masked
  // stores of the accumulators themselves make GCC 12 spill them inside the
  // k loop). Whole panels stored this way too ran ~3.5% slower (DeiT-S qkv).
  alignas(64) int32_t out[MR][16 * NV];
  VITINT_EACH_ROW(VITINT_STORE_ROW);
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NV; ++v) {
      int32_t* c = t.c + r * t.ldc + 16 * v;
      __m512i x = _mm512_load_si512(out[r] + 16 * v);
      if (t.accumulate) x = _mm512_add_epi32(x, _mm512_maskz_loadu_epi32(t.mask[v], c));
      _mm512_mask_storeu_epi32(c, t.mask[v], x);
    }
  }
}

#undef VITINT_ACC_ROW
#undef VITINT_ROW
#undef VITINT_STORE_ROW
#undef VITINT_STORE_C
#undef VITINT_STORE_C_ONE

using MicroKernel = void (*)(const Tile&);

template <bool kS16, int MR>
constexpr MicroKernel pick_nv(int nv) {
  switch (nv) {
    case 1:
      return &micro_kernel<kS16, MR, 1>;
    case 2:
      return &micro_kernel<kS16, MR, 2>;
    case 3:
      return &micro_kernel<kS16, MR, 3>;
    default:
      return &micro_kernel<kS16, MR, 4>;
  }
}

template <bool kS16>
MicroKernel pick(int mr, int nv) {
  switch (mr) {
    case 1:
      return pick_nv<kS16, 1>(nv);
    case 2:
      return pick_nv<kS16, 2>(nv);
    case 3:
      return pick_nv<kS16, 3>(nv);
    case 4:
      return pick_nv<kS16, 4>(nv);
    case 5:
      return pick_nv<kS16, 5>(nv);
    default:
      return pick_nv<kS16, 6>(nv);
  }
}

// A is walked as bytes: one 4-byte group is 4 uint8 k-values (vpdpbusd) or
// 2 int16 ones (vpdpwssd).
template <bool kS16>
void drive(int m, int n, int k, const uint8_t* a, ptrdiff_t lda_bytes, const void* packed_b,
           int32_t* c, int ldc) {
  constexpr int kElem = kS16 ? 2 : 1;
  constexpr int kPerGroup = 4 / kElem;
  const int total_groups = (k + kPerGroup - 1) / kPerGroup;
  const int tail_bytes = (k % kPerGroup) * kElem;
  const int n_pad = round_up(n, 16);
  const ptrdiff_t panel_bytes = ptrdiff_t{kPanel} * total_groups * 4;
  const auto* packed = static_cast<const int8_t*>(packed_b);

  Tile t{};
  t.lda_bytes = lda_bytes;
  t.ldc = ldc;
  for (int g0 = 0; g0 < total_groups; g0 += kKGroups) {
    const int gn = std::min(kKGroups, total_groups - g0);
    const bool last_block = g0 + gn == total_groups;
    t.groups = gn;
    t.tail_bytes = 0;
    if (last_block && tail_bytes != 0) {
      t.groups = gn - 1;
      t.tail_bytes = tail_bytes;
    }
    t.accumulate = g0 > 0;
    for (int j0 = 0; j0 < n; j0 += kPanel) {
      const int width = std::min(kPanel, n_pad - j0);
      const int nv = width / 16;
      for (int v = 0; v < 4; ++v) {
        const int valid = std::clamp(n - j0 - 16 * v, 0, 16);
        t.mask[v] = static_cast<__mmask16>((1u << valid) - 1u);
      }
      t.b = packed + (j0 / kPanel) * panel_bytes + ptrdiff_t{g0} * width * 4;
      t.b_stride = ptrdiff_t{width} * 4;
      const MicroKernel full = pick<kS16>(kMr, nv);
      for (int i0 = 0; i0 < m; i0 += kMr) {
        t.a = a + i0 * lda_bytes + ptrdiff_t{g0} * 4;
        t.c = c + ptrdiff_t{i0} * ldc + j0;
        const int mr = std::min(kMr, m - i0);
        (mr == kMr ? full : pick<kS16>(mr, nv))(t);
      }
    }
  }
}

// One 4-byte group of column j: k-values p0..p0+G-1 as type T (G = 4 /
// sizeof(T)), zero past k. src points at B[j][p0] of a [n][k] source.
template <typename T>
int32_t gather_group(const int8_t* src, int valid) {
  constexpr int kPerGroup = 4 / static_cast<int>(sizeof(T));
  T v[kPerGroup] = {};
  for (int t = 0; t < kPerGroup && t < valid; ++t) v[t] = static_cast<T>(src[t]);
  int32_t x;
  std::memcpy(&x, v, sizeof x);
  return x;
}

// 16 columns x one group from a [k][n] source (rows p0.. at stride ks): the
// int8 case interleaves 4 rows bytewise, the int16 case sign-extends 2 rows
// and interleaves them as 16-bit halves. cols: valid columns (0..16);
// rows: valid k-values of the group.
template <typename T>
__m512i interleave_group(const int8_t* src, ptrdiff_t ks, int rows, int cols) {
  const auto cm = static_cast<__mmask16>((1u << cols) - 1u);
  auto row = [&](int t) {
    return t < rows ? _mm_maskz_loadu_epi8(cm, src + t * ks) : _mm_setzero_si128();
  };
  if constexpr (sizeof(T) == 1) {
    const __m128i r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3);
    const __m128i t0 = _mm_unpacklo_epi8(r0, r1), t1 = _mm_unpackhi_epi8(r0, r1);
    const __m128i t2 = _mm_unpacklo_epi8(r2, r3), t3 = _mm_unpackhi_epi8(r2, r3);
    __m512i out = _mm512_castsi128_si512(_mm_unpacklo_epi16(t0, t2));  // columns 0-3
    out = _mm512_inserti32x4(out, _mm_unpackhi_epi16(t0, t2), 1);      // 4-7
    out = _mm512_inserti32x4(out, _mm_unpacklo_epi16(t1, t3), 2);      // 8-11
    return _mm512_inserti32x4(out, _mm_unpackhi_epi16(t1, t3), 3);     // 12-15
  } else {
    const __m512i r0 = _mm512_cvtepi8_epi32(row(0));
    const __m512i r1 = _mm512_cvtepi8_epi32(row(1));
    return _mm512_or_si512(_mm512_and_si512(r0, _mm512_set1_epi32(0xFFFF)),
                           _mm512_slli_epi32(r1, 16));
  }
}

// In-register transpose of 16 x 16 int32: r[a][b] becomes r[b][a].
void transpose16x16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  // u[4i + q], 128-bit lane L: column 4L + q of rows 4i .. 4i + 3.
  __m512i u[16];
  for (int i = 0; i < 4; ++i) {
    u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xEE);
    r[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + q] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[8 + q] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + q] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// Packs B[j][p] = b[j * cs + p * ks] (one of cs, ks is 1) into panels of
// `panel` columns (the last one narrower, zero-padded to a multiple of 16);
// inside a panel of width w, group g (k-values g*G .. g*G+G-1, G = 4 /
// sizeof(T)) holds w columns x 4 bytes. k is zero-padded to k_pad.
template <typename T>
void pack_groups(int n, int k, const int8_t* b, ptrdiff_t cs, ptrdiff_t ks, int panel, int k_pad,
                 void* packed) {
  constexpr int kPerGroup = 4 / static_cast<int>(sizeof(T));
  const int n_pad = round_up(n, 16);
  const int groups = k_pad / kPerGroup;
  auto* dst = static_cast<uint8_t*>(packed);
  for (int j0 = 0; j0 < n_pad; j0 += panel) {
    const int width = std::min(panel, n_pad - j0);
    uint8_t* pd = dst + ptrdiff_t{j0} * k_pad * static_cast<ptrdiff_t>(sizeof(T));
    if (ks == 1 && sizeof(T) == 1) {
      // Rows of B are contiguous in k: 16 columns x 16 groups (64 bytes of
      // each row) are one 16 x 16 int32 transpose.
      for (int c0 = 0; c0 < width; c0 += 16) {
        for (int g0 = 0; g0 < groups; g0 += 16) {
          __m512i r[16];
          for (int c = 0; c < 16; ++c) {
            const int j = j0 + c0 + c;
            const int bytes = j < n ? std::clamp(k - g0 * 4, 0, 64) : 0;
            const auto m = static_cast<__mmask64>(bytes == 64 ? ~0ull : (1ull << bytes) - 1);
            r[c] = bytes == 0 ? _mm512_setzero_si512()
                              : _mm512_maskz_loadu_epi8(m, b + j * cs + g0 * 4);
          }
          transpose16x16(r);
          for (int g = 0; g < std::min(16, groups - g0); ++g) {
            _mm512_storeu_si512(pd + (ptrdiff_t{g0 + g} * width + c0) * 4, r[g]);
          }
        }
      }
    } else if (ks == 1) {
      // int16 groups from a [n][k] source (not a hot path): one value at a time.
      for (int jj = 0; jj < width; ++jj) {
        const int j = j0 + jj;
        const int8_t* src = b + std::min(j, n - 1) * cs;  // read only when j < n
        for (int g = 0; g < groups; ++g) {
          const int valid = j < n ? std::clamp(k - g * kPerGroup, 0, kPerGroup) : 0;
          const int32_t x = gather_group<T>(src + g * kPerGroup, valid);
          std::memcpy(pd + (ptrdiff_t{g} * width + jj) * 4, &x, sizeof x);
        }
      }
    } else {
      // Rows of B^T are contiguous in n: interleave them 16 columns at a time.
      for (int g = 0; g < groups; ++g) {
        const int rows = std::clamp(k - g * kPerGroup, 0, kPerGroup);
        const int8_t* src = b + ptrdiff_t{g} * kPerGroup * ks + j0 * cs;
        for (int c0 = 0; c0 < width; c0 += 16) {
          const int cols = std::clamp(n - j0 - c0, 0, 16);
          _mm512_storeu_si512(pd + (ptrdiff_t{g} * width + c0) * 4,
                              interleave_group<T>(src + c0, ks, rows, cols));
        }
      }
    }
  }
}

}  // namespace

void avx512_pack_vnni4(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                       int panel, int k_pad, void* packed) {
  pack_groups<int8_t>(n, k, b, col_stride, k_stride, panel, k_pad, packed);
}

size_t avx512_packed_b_bytes(int n, int k) {
  return static_cast<size_t>(round_up(n, 16)) * static_cast<size_t>(round_up(k, 4));
}

void avx512_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                   void* packed) {
  pack_groups<int8_t>(n, k, b, col_stride, k_stride, kPanel, round_up(k, 4), packed);
}

void avx512_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                         int32_t* c, int ldc) {
  drive<false>(m, n, k, a, lda, packed_b, c, ldc);
}

size_t avx512_packed_b16_bytes(int n, int k) {
  return static_cast<size_t>(round_up(n, 16)) * static_cast<size_t>(round_up(k, 2)) * 2;
}

void avx512_pack_b16(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                     void* packed) {
  pack_groups<int16_t>(n, k, b, col_stride, k_stride, kPanel, round_up(k, 2), packed);
}

void avx512_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                          int32_t* c, int ldc) {
  drive<true>(m, n, k, reinterpret_cast<const uint8_t*>(a), ptrdiff_t{lda} * 2, packed_b, c, ldc);
}

}  // namespace vitint::kernels::detail
