// The 256-bit GEMM micro-kernel and loops shared by the AVX2 path and the
// AVX-VNNI path. Both pack B in panels of 16 columns in which each step of k
// ("group": 2 int16 k-values for the int16-widened GEMMs, 4 int8 k-values
// for AVX-VNNI's uint8 GEMM) holds 16 columns x 4 bytes, two ymm loads; A
// is read 4 bytes per row and group and broadcast. Dot::step(acc, a, b)
// adds the group's products of a and b to the int32 lanes of acc (vpmaddwd +
// vpaddd, vpdpwssd or vpdpbusd, all exact).
//
// Included by one translation unit per path, each compiled with its own ISA
// flags (hence the anonymous namespace: each gets its own copy; `ymm` keeps
// the names apart from a unit's own code).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../gemm_internal.h"

namespace vitint::kernels::detail {
namespace {
namespace ymm {

constexpr int kPanel = 16;      // columns per packed panel (2 ymm)
constexpr int kPanelStep = 64;  // bytes of a panel per group
constexpr int kMr = 6;          // rows per micro-kernel call

struct Tile {
  const uint8_t* a;     // A at row i0 and the block's first group
  ptrdiff_t lda;        // A row stride in bytes
  int groups;           // whole 4-byte groups of A in this block
  int tail_bytes;       // bytes of a final partial group (0..3), zero-extended
  const uint8_t* b;     // packed panel at the block's first group
  int32_t* c;           // C at (i0, j0)
  ptrdiff_t ldc;
  int valid;            // valid columns of the panel (1..16)
  bool accumulate;      // add to C (a later k block) instead of overwriting
};

inline __m256i lane_mask(int valid) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), idx);
}

// Named accumulators (GCC 12 keeps an array of vectors in memory).
#define VITINT_ACC_ROW(r) __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = c##r##0
#define VITINT_ROW(r)                                     \
  if constexpr (MR > r) {                                 \
    int32_t group;                                        \
    std::memcpy(&group, a + (r)*lda, sizeof group);       \
    const __m256i av = _mm256_set1_epi32(group);          \
    c##r##0 = Dot::step(c##r##0, av, b0);                 \
    c##r##1 = Dot::step(c##r##1, av, b1);                 \
  }
// Whole panels: the accumulators go straight to C (added to it for a later
// k block).
#define VITINT_STORE_C(r)                                                             \
  if constexpr (MR > r) {                                                             \
    auto* c0 = reinterpret_cast<__m256i*>(t.c + (r)*t.ldc);                           \
    if (t.accumulate) c##r##0 = _mm256_add_epi32(c##r##0, _mm256_loadu_si256(c0));     \
    if (t.accumulate) c##r##1 = _mm256_add_epi32(c##r##1, _mm256_loadu_si256(c0 + 1)); \
    _mm256_storeu_si256(c0, c##r##0);                                                 \
    _mm256_storeu_si256(c0 + 1, c##r##1);                                             \
  }
#define VITINT_STORE_ROW(r)                                              \
  if constexpr (MR > r) {                                                \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]), c##r##0);     \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + 8), c##r##1); \
  }

template <class Dot, int MR>
void micro_kernel(const Tile& t) {
  static_assert(MR >= 1 && MR <= kMr, "micro-tile is at most 6 rows");
  VITINT_EACH_ROW(VITINT_ACC_ROW);
  const uint8_t* a = t.a;
  const uint8_t* b = t.b;
  ptrdiff_t lda = t.lda;
  int groups = t.groups;
  // A may end inside the last group (B is zero-padded there): its bytes go
  // to a zero-padded copy that a second pass of the same loop reads.
  int32_t tail[MR];
  for (int pass = t.tail_bytes != 0 ? 2 : 1; pass > 0; --pass) {
    for (int g = 0; g < groups; ++g) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
      VITINT_EACH_ROW(VITINT_ROW);
      a += 4;
      b += kPanelStep;
    }
    if (pass == 2) {
      for (int r = 0; r < MR; ++r) {
        tail[r] = 0;
        std::memcpy(&tail[r], a + r * lda, static_cast<size_t>(t.tail_bytes));
      }
      a = reinterpret_cast<const uint8_t*>(tail);
      lda = 4;
      groups = 1;
    }
  }
  if (t.valid == kPanel) {
    VITINT_EACH_ROW(VITINT_STORE_C);
    return;
  }
  // A partial panel: masked loads and stores of C from a local block (masked
  // stores of the accumulators themselves make GCC spill them in the loop).
  alignas(32) int32_t out[MR][kPanel];
  VITINT_EACH_ROW(VITINT_STORE_ROW);
  const __m256i m0 = lane_mask(t.valid);
  const __m256i m1 = lane_mask(t.valid - 8);
  for (int r = 0; r < MR; ++r) {
    auto* cr = reinterpret_cast<int*>(t.c + r * t.ldc);
    __m256i x0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(out[r]));
    __m256i x1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(out[r] + 8));
    if (t.accumulate) {
      x0 = _mm256_add_epi32(x0, _mm256_maskload_epi32(cr, m0));
      x1 = _mm256_add_epi32(x1, _mm256_maskload_epi32(cr + 8, m1));
    }
    _mm256_maskstore_epi32(cr, m0, x0);
    _mm256_maskstore_epi32(cr + 8, m1, x1);
  }
}

#undef VITINT_ACC_ROW
#undef VITINT_ROW
#undef VITINT_STORE_C
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

// C (+)= A B over one k block for all rows and panels: A rows of `groups`
// whole groups plus `tail_bytes`, lda bytes apart; b the packed B at the
// block's first group, panels panel_bytes apart.
template <class Dot>
void multiply_block(int m, int n, const uint8_t* a, ptrdiff_t lda, int groups, int tail_bytes, const uint8_t* b,
                    ptrdiff_t panel_bytes, int32_t* c, int ldc, bool accumulate) {
  Tile t{};
  t.lda = lda;
  t.groups = groups;
  t.tail_bytes = tail_bytes;
  t.ldc = ldc;
  t.accumulate = accumulate;
  const MicroKernel full = pick<Dot>(kMr);
  for (int j0 = 0; j0 < n; j0 += kPanel) {
    t.valid = std::min(kPanel, n - j0);
    t.b = b + (j0 / kPanel) * panel_bytes;
    for (int i0 = 0; i0 < m; i0 += kMr) {
      t.a = a + ptrdiff_t{i0} * lda;
      t.c = c + ptrdiff_t{i0} * ldc + j0;
      const int mr = std::min(kMr, m - i0);
      (mr == kMr ? full : pick<Dot>(mr))(t);
    }
  }
}

// A read in place, 4-byte groups of kElem-byte values (1: uint8 quads for
// vpdpbusd; 2: int16 pairs, B packed as k-pairs of int16 by avx2_pack_b),
// k in blocks of kKGroups groups; the last block ends with A's partial
// group, if any. lda in bytes.
constexpr int kKGroups = 256;  // k-groups per cache block (B micro-panel: 16 KiB)

template <class Dot, int kElem>
void drive_in_place(int m, int n, int k, const uint8_t* a, ptrdiff_t lda, const void* packed_b, int32_t* c,
                    int ldc) {
  constexpr int kPerGroup = 4 / kElem;
  const int total_groups = (k + kPerGroup - 1) / kPerGroup;
  const int tail_bytes = k % kPerGroup * kElem;
  const ptrdiff_t panel_bytes = ptrdiff_t{kPanel} * total_groups * 4;
  const auto* packed = static_cast<const uint8_t*>(packed_b);
  for (int g0 = 0; g0 < total_groups; g0 += kKGroups) {
    const int gn = std::min(kKGroups, total_groups - g0);
    const bool tail = g0 + gn == total_groups && tail_bytes != 0;
    multiply_block<Dot>(m, n, a + ptrdiff_t{g0} * 4, lda, tail ? gn - 1 : gn, tail ? tail_bytes : 0,
                        packed + ptrdiff_t{g0} * kPanelStep, panel_bytes, c, ldc, g0 > 0);
  }
}

// AVX2's uint8 GEMM: B packed as k-pairs of int16 (avx2_pack_b); A is
// widened one k block at a time into an int16 buffer with an even,
// zero-padded row length, so no block has a partial group.
std::vector<int16_t>& wide_a_buffer() {
  thread_local std::vector<int16_t> buf;
  return buf;
}

template <class Dot>
void drive_wide(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b, int32_t* c, int ldc) {
  constexpr int kBlock = 256;  // k-values per cache block (B micro-panel: 8 KiB)
  const int k_pad = round_up(k, 2);
  const auto* packed = static_cast<const uint8_t*>(packed_b);
  const int kb_max = std::min(kBlock, k_pad);
  std::vector<int16_t>& buf = wide_a_buffer();
  buf.resize(static_cast<size_t>(m) * static_cast<size_t>(kb_max));
  for (int k0 = 0; k0 < k_pad; k0 += kBlock) {
    const int kb = std::min(kBlock, k_pad - k0);  // even
    const int kr = std::min(kb, k - k0);          // real k-values in the block
    for (int i = 0; i < m; ++i) {
      const uint8_t* src = a + ptrdiff_t{i} * lda + k0;
      int16_t* dst = buf.data() + ptrdiff_t{i} * kb_max;
      for (int p = 0; p < kr; ++p) dst[p] = static_cast<int16_t>(src[p]);
      if (kr < kb) dst[kr] = 0;
    }
    multiply_block<Dot>(m, n, reinterpret_cast<const uint8_t*>(buf.data()), ptrdiff_t{kb_max} * 2, kb / 2, 0,
                        packed + ptrdiff_t{k0 / 2} * kPanelStep, ptrdiff_t{kPanel} * k_pad * 2, c, ldc, k0 > 0);
  }
}

}  // namespace ymm
}  // namespace
}  // namespace vitint::kernels::detail
