// The AVX2 GEMM over int16-widened operands (see gemm_avx2.cpp for the
// layout), shared by the AVX2 path (vpmaddwd + vpaddd) and the AVX-VNNI
// path's int16 GEMM (vpdpwssd): Dot::pairs(acc, a, b) adds the int16 pair
// products of a and b to the int32 lanes of acc. Included by one translation
// unit per path, each compiled with its own ISA flags (hence the anonymous
// namespace: each gets its own copy; `wide16` keeps the names apart from a
// unit's own kernels).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../gemm_internal.h"

namespace vitint::kernels::detail {
namespace {
namespace wide16 {

constexpr int kPanel = 16;  // columns per packed panel (2 ymm)
constexpr int kMr = 6;
constexpr int kKBlock = 256;  // k-values per cache block (B micro-panel: 8 KiB)

struct Tile {
  const int16_t* a;  // packed A block at row i0
  ptrdiff_t lda;     // packed A row stride (elements)
  int pairs;         // k-pairs in this block
  const int16_t* b;  // packed panel at this k block
  int32_t* c;
  ptrdiff_t ldc;
  int valid;  // valid columns of the panel (1..16)
  bool accumulate;
};

inline __m256i lane_mask(int valid) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), idx);
}

// Named accumulators (GCC 12 keeps an array of vectors in memory), zero
// at the start; C is read, if at all, after the k loop.
#define VITINT_ROW(r)                                               \
  if constexpr (MR > r) {                                           \
    int32_t pair;                                                   \
    std::memcpy(&pair, a + (r)*lda, sizeof pair);                   \
    const __m256i av = _mm256_set1_epi32(pair);                     \
    c##r##0 = Dot::pairs(c##r##0, av, b0);                          \
    c##r##1 = Dot::pairs(c##r##1, av, b1);                          \
  }
#define VITINT_ACC_ROW(r) __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = c##r##0
#define VITINT_STORE_ROW(r)                                              \
  if constexpr (MR > r) {                                                \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]), c##r##0);     \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + 8), c##r##1); \
  }

template <class Dot, int MR>
void micro_kernel(const Tile& t) {
  static_assert(MR >= 1 && MR <= kMr, "micro-tile is at most 6 rows");
  VITINT_ACC_ROW(0);
  VITINT_ACC_ROW(1);
  VITINT_ACC_ROW(2);
  VITINT_ACC_ROW(3);
  VITINT_ACC_ROW(4);
  VITINT_ACC_ROW(5);
  const int16_t* a = t.a;
  const int16_t* b = t.b;
  const ptrdiff_t lda = t.lda;
  for (int g = 0; g < t.pairs; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16));
    VITINT_ROW(0);
    VITINT_ROW(1);
    VITINT_ROW(2);
    VITINT_ROW(3);
    VITINT_ROW(4);
    VITINT_ROW(5);
    a += 2;
    b += 32;
  }
  alignas(32) int32_t out[MR][kPanel];
  VITINT_STORE_ROW(0);
  VITINT_STORE_ROW(1);
  VITINT_STORE_ROW(2);
  VITINT_STORE_ROW(3);
  VITINT_STORE_ROW(4);
  VITINT_STORE_ROW(5);
  const __m256i m0 = lane_mask(t.valid);
  const __m256i m1 = lane_mask(t.valid - 8);
  for (int r = 0; r < MR; ++r) {
    int32_t* cr = t.c + r * t.ldc;
    __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(out[r]));
    __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(out[r] + 8));
    if (t.valid == kPanel) {
      if (t.accumulate) {
        x0 = _mm256_add_epi32(x0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cr)));
        x1 = _mm256_add_epi32(x1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(cr + 8)));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(cr), x0);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(cr + 8), x1);
    } else {
      if (t.accumulate) {
        x0 = _mm256_add_epi32(x0, _mm256_maskload_epi32(reinterpret_cast<const int*>(cr), m0));
        x1 = _mm256_add_epi32(x1, _mm256_maskload_epi32(reinterpret_cast<const int*>(cr + 8), m1));
      }
      _mm256_maskstore_epi32(reinterpret_cast<int*>(cr), m0, x0);
      _mm256_maskstore_epi32(reinterpret_cast<int*>(cr + 8), m1, x1);
    }
  }
}

#undef VITINT_ROW
#undef VITINT_ACC_ROW
#undef VITINT_STORE_ROW

using MicroKernel = void (*)(const Tile&);

template <class Dot>
MicroKernel pick(int mr) {
  switch (mr) {
    case 1:
      return &micro_kernel<Dot, 1>;
    case 2:
      return &micro_kernel<Dot, 2>;
    case 3:
      return &micro_kernel<Dot, 3>;
    case 4:
      return &micro_kernel<Dot, 4>;
    case 5:
      return &micro_kernel<Dot, 5>;
    default:
      return &micro_kernel<Dot, 6>;
  }
}

std::vector<int16_t>& a_buffer() {
  thread_local std::vector<int16_t> buf;
  return buf;
}

template <class Dot, typename A>
void drive(int m, int n, int k, const A* a, int lda, const void* packed_b, int32_t* c, int ldc) {
  const int k_pad = round_up(k, 2);
  const auto* packed = static_cast<const int16_t*>(packed_b);
  const int kb_max = std::min(kKBlock, k_pad);
  std::vector<int16_t>& buf = a_buffer();
  buf.resize(static_cast<size_t>(m) * static_cast<size_t>(kb_max));

  Tile t{};
  t.lda = kb_max;
  t.ldc = ldc;
  for (int k0 = 0; k0 < k_pad; k0 += kKBlock) {
    const int kb = std::min(kKBlock, k_pad - k0);  // even
    const int kr = std::min(kb, k - k0);           // real k-values in the block
    for (int i = 0; i < m; ++i) {
      const A* src = a + ptrdiff_t{i} * lda + k0;
      int16_t* dst = buf.data() + ptrdiff_t{i} * kb_max;
      for (int p = 0; p < kr; ++p) dst[p] = static_cast<int16_t>(src[p]);
      if (kr < kb) dst[kr] = 0;
    }
    t.pairs = kb / 2;
    t.accumulate = k0 > 0;
    for (int j0 = 0; j0 < n; j0 += kPanel) {
      t.valid = std::min(kPanel, n - j0);
      t.b = packed + ptrdiff_t{j0} * k_pad + ptrdiff_t{k0} * kPanel;
      for (int i0 = 0; i0 < m; i0 += kMr) {
        t.a = buf.data() + ptrdiff_t{i0} * kb_max;
        t.c = c + ptrdiff_t{i0} * ldc + j0;
        pick<Dot>(std::min(kMr, m - i0))(t);
      }
    }
  }
}

}  // namespace wide16
}  // namespace
}  // namespace vitint::kernels::detail
