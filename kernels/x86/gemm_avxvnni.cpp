// AVX-VNNI GEMMs, for CPUs with AVX2 and AVX-VNNI but no AVX-512 (Alder
// Lake and later client cores), on the 256-bit micro-kernel of gemm_ymm.h:
// uint8 x int8 with vpdpbusd on groups of 4 k-values of A read in place (B
// packed here, 16-column panels of 4-byte k-groups), int16 x int8 with
// vpdpwssd on the AVX2 path's int16-widened layout. Neither instruction
// saturates, so the int32 sums equal the reference's. The elementwise
// kernels of this path are the AVX2 ones.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm_ymm.h"

namespace vitint::kernels::detail {
namespace {

using ymm::kPanel;

struct BytesDot {  // 4 uint8 x 4 int8 per lane
  static __m256i step(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
};
struct PairsDot {  // 2 int16 x 2 int16 per lane
  static __m256i step(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_avx_epi32(acc, a, b); }
};

// In-register transpose of 8 x 8 int32: r[a][b] becomes r[b][a].
void transpose8x8(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    r[q] = _mm256_permute2x128_si256(u[q], u[4 + q], 0x20);
    r[4 + q] = _mm256_permute2x128_si256(u[q], u[4 + q], 0x31);
  }
}

// One group (4 k-values from p0 on, zero past k) of one column, from a
// source where k is contiguous (src = B[j][p0]) or strided by ks.
int32_t gather_group(const int8_t* src, ptrdiff_t ks, int valid) {
  int8_t v[4] = {};
  for (int t = 0; t < 4 && t < valid; ++t) v[t] = src[t * ks];
  int32_t x;
  std::memcpy(&x, v, sizeof x);
  return x;
}

}  // namespace

size_t avxvnni_packed_b_bytes(int n, int k) {
  return static_cast<size_t>(round_up(n, kPanel)) * static_cast<size_t>(round_up(k, 4));
}

void avxvnni_pack_b(int n, int k, const int8_t* b, ptrdiff_t cs, ptrdiff_t ks, void* packed) {
  const int n_pad = round_up(n, kPanel);
  const int groups = round_up(k, 4) / 4;
  auto* dst = static_cast<uint8_t*>(packed);
  for (int j0 = 0; j0 < n_pad; j0 += kPanel) {
    uint8_t* pd = dst + ptrdiff_t{j0} * groups * 4;
    for (int c0 = 0; c0 < kPanel; c0 += 8) {
      const int j = j0 + c0;
      int g0 = 0;
      if (ks == 1 && j + 8 <= n) {
        // Rows of B contiguous in k: 8 columns x 8 whole groups (32 bytes of
        // each row) are one 8 x 8 int32 transpose.
        for (; (g0 + 8) * 4 <= k; g0 += 8) {
          __m256i r[8];
          for (int c = 0; c < 8; ++c)
            r[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (j + c) * cs + g0 * 4));
          transpose8x8(r);
          for (int g = 0; g < 8; ++g)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(pd + (ptrdiff_t{g0 + g} * kPanel + c0) * 4), r[g]);
        }
      } else if (j + 8 <= n) {
        // Rows of B^T contiguous in n: interleave 4 rows bytewise, 8 columns
        // (8 bytes of each row) per whole group.
        for (; (g0 + 1) * 4 <= k; ++g0) {
          const int8_t* src = b + ptrdiff_t{g0} * 4 * ks + j;
          auto row = [&](int t) { return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + t * ks)); };
          const __m128i lo = _mm_unpacklo_epi8(row(0), row(1));  // columns 0-7: k0 k1
          const __m128i hi = _mm_unpacklo_epi8(row(2), row(3));  // columns 0-7: k2 k3
          uint8_t* d = pd + (ptrdiff_t{g0} * kPanel + c0) * 4;
          _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_unpacklo_epi16(lo, hi));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(d + 16), _mm_unpackhi_epi16(lo, hi));
        }
      }
      // Groups left over (k tails, partial column blocks, zero padding).
      for (int g = g0; g < groups; ++g) {
        const int valid = std::clamp(k - g * 4, 0, 4);
        for (int c = 0; c < 8; ++c) {
          const int32_t x = j + c < n ? gather_group(b + (j + c) * cs + ptrdiff_t{g} * 4 * ks, ks, valid) : 0;
          std::memcpy(pd + (ptrdiff_t{g} * kPanel + c0 + c) * 4, &x, sizeof x);
        }
      }
    }
  }
}

void avxvnni_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b, int32_t* c,
                          int ldc) {
  ymm::drive_in_place<BytesDot, 1>(m, n, k, a, lda, packed_b, c, ldc);
}

void avxvnni_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b, int32_t* c,
                           int ldc) {
  ymm::drive_in_place<PairsDot, 2>(m, n, k, reinterpret_cast<const uint8_t*>(a), ptrdiff_t{lda} * 2, packed_b, c,
                                   ldc);
}

}  // namespace vitint::kernels::detail
