// AVX2 GEMMs. vpmaddubsw would saturate its int16 pair sums (255 * 127 * 2
// overflows), so both operands are widened to int16 and multiplied with
// vpmaddwd, whose int16 x int16 products and pair sums are exact in int32.
//
// Packed B (int16): panels of 16 columns (n zero-padded to a multiple of
// 16); inside a panel, k-pair g holds 16 columns x 2 k-values, i.e. two ymm
// loads per pair. uint8 A is widened, one k block at a time, into an int16
// buffer with an even, zero-padded row length; int16 A is read in place
// (an odd k's last value as a partial group). The micro-kernel (gemm_ymm.h, shared with the AVX-VNNI
// path) keeps 6 rows x 16 columns (12 ymm).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm_ymm.h"

namespace vitint::kernels::detail {
using ymm::kPanel;
namespace {

// vpmaddwd + vpaddd: the exact int16 pair products without AVX-VNNI.
struct MaddDot {
  static __m256i step(__m256i acc, __m256i a, __m256i b) { return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b)); }
};

}  // namespace

size_t avx2_packed_b_bytes(int n, int k) {
  return static_cast<size_t>(round_up(n, kPanel)) * static_cast<size_t>(round_up(k, 2)) * 2;
}

void avx2_pack_b(int n, int k, const int8_t* b, ptrdiff_t cs, ptrdiff_t ks, void* packed) {
  const int k_pad = round_up(k, 2);
  const int n_pad = round_up(n, kPanel);
  auto* dst = static_cast<int16_t*>(packed);
  for (int j0 = 0; j0 < n_pad; j0 += kPanel) {
    // Column jj of pair g sits at panel[g * 32 + jj * 2 + (0 or 1)].
    int16_t* panel = dst + ptrdiff_t{j0} * k_pad;
    const int cols = std::min(kPanel, n - j0);
    if (ks == 1) {
      // [n][k] source: one column at a time, reading its row of B.
      for (int jj = 0; jj < kPanel; ++jj) {
        int16_t* out = panel + jj * 2;
        if (jj >= cols) {  // padding column
          for (int p = 0; p < k_pad; p += 2, out += 2 * kPanel) out[0] = out[1] = 0;
          continue;
        }
        const int8_t* src = b + (j0 + jj) * cs;
        int p = 0;
        for (; p + 2 <= k; p += 2, out += 2 * kPanel) {
          out[0] = src[p];
          out[1] = src[p + 1];
        }
        if (p < k) {
          out[0] = src[p];
          out[1] = 0;
        }
      }
    } else {
      // [k][n] source: two rows of 16 columns, sign-extended and interleaved.
      for (int p = 0; p < k_pad; p += 2) {
        // Here cs == 1: a row's 16 columns are contiguous.
        auto load_row = [&](int t) {
          if (p + t >= k) return _mm_setzero_si128();
          const int8_t* src = b + (p + t) * ks + j0;
          if (cols == kPanel) return _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
          alignas(16) int8_t part[kPanel] = {};
          std::memcpy(part, src, static_cast<size_t>(cols));
          return _mm_load_si128(reinterpret_cast<const __m128i*>(part));
        };
        const __m256i r0 = _mm256_cvtepi8_epi16(load_row(0));
        const __m256i r1 = _mm256_cvtepi8_epi16(load_row(1));
        // Per 128-bit lane: lo = columns 0-3 | 8-11, hi = 4-7 | 12-15.
        const __m256i lo = _mm256_unpacklo_epi16(r0, r1);
        const __m256i hi = _mm256_unpackhi_epi16(r0, r1);
        int16_t* out = panel + p * kPanel;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                            _mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16),
                            _mm256_permute2x128_si256(lo, hi, 0x31));
      }
    }
  }
}

void avx2_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc) {
  ymm::drive_wide<MaddDot>(m, n, k, a, lda, packed_b, c, ldc);
}

void avx2_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                        int32_t* c, int ldc) {
  ymm::drive_in_place<MaddDot, 2>(m, n, k, reinterpret_cast<const uint8_t*>(a), ptrdiff_t{lda} * 2, packed_b, c, ldc);
}

}  // namespace vitint::kernels::detail
