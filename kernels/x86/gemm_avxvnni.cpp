// AVX-VNNI GEMMs, for CPUs with AVX2 and AVX-VNNI but no AVX-512 (Alder
// Lake and later client cores). uint8 x int8: vpdpbusd on ymm registers;
// like the AVX-512 kernel, it does not saturate, so the int32 sums equal the
// reference's. int16 x int8: the AVX2 kernel's layout and loops
// (gemm_int16_avx2.h) with vpdpwssd in place of vpmaddwd + vpaddd. The
// elementwise kernels of this path are the AVX2 ones.
//
// Packed B: panels of 16 columns (n zero-padded to a multiple of 16); inside
// a panel, k-group g holds 16 columns x 4 bytes (4 int8 k-values), two ymm
// loads. k is zero-padded to whole groups, so from a panel boundary j on the
// packed bytes are a packed B of their own, j * round_up(k, 4) bytes in.
//
// The micro-kernel keeps MR x NV ymm accumulators (6 x 2: 6 rows x 16
// columns), broadcasts 4 bytes of each A row per group straight from A, and
// walks k innermost over blocks of kKGroups groups (a 16 KiB B micro-panel).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../gemm_internal.h"
#include "gemm_int16_avx2.h"

namespace vitint::kernels::detail {
namespace {

constexpr int kPanel = 16;     // columns per packed panel (2 ymm)
constexpr int kMr = 6;         // rows per micro-kernel call
constexpr int kKGroups = 256;  // k-groups per cache block (1024 int8 k-values)

struct Tile {
  const uint8_t* a;     // first A byte of the block's k range, row i0
  ptrdiff_t lda;        // A row stride in bytes
  int groups;           // whole 4-byte A groups in this k block
  int tail_bytes;       // bytes of a final partial group (0..3), zero-extended
  const int8_t* b;      // packed panel at this k block
  int32_t* c;           // C at (i0, j0)
  ptrdiff_t ldc;
  int valid;            // valid columns of the panel (1..16)
  bool accumulate;      // add to C (a later k block) instead of overwriting
};

inline int32_t load_group(const uint8_t* p) {
  int32_t x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

// Accumulators as named variables (an array would live in memory, see the
// AVX-512 kernel).
#define VITINT_ACC_ROW(r) __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = c##r##0
#define VITINT_ROW(r)                                                        \
  if constexpr (MR > r) {                                                    \
    const __m256i av = _mm256_set1_epi32(load_group(a + (r)*lda));           \
    c##r##0 = _mm256_dpbusd_avx_epi32(c##r##0, av, b0);                      \
    if constexpr (NV > 1) c##r##1 = _mm256_dpbusd_avx_epi32(c##r##1, av, b1); \
  }
#define VITINT_STORE_ROW(r)                                                                 \
  if constexpr (MR > r) {                                                                   \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]), c##r##0);                        \
    if constexpr (NV > 1) _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + 8), c##r##1); \
  }

// Whole panel columns: the accumulators go straight to C (added to it for a
// later k block).
#define VITINT_STORE_C(r)                                                           \
  if constexpr (MR > r) {                                                           \
    auto* c0 = reinterpret_cast<__m256i*>(t.c + (r)*t.ldc);                         \
    if (t.accumulate) c##r##0 = _mm256_add_epi32(c##r##0, _mm256_loadu_si256(c0));   \
    _mm256_storeu_si256(c0, c##r##0);                                               \
    if constexpr (NV > 1) {                                                         \
      if (t.accumulate) c##r##1 = _mm256_add_epi32(c##r##1, _mm256_loadu_si256(c0 + 1)); \
      _mm256_storeu_si256(c0 + 1, c##r##1);                                         \
    }                                                                               \
  }

template <int MR, int NV>
void micro_kernel(const Tile& t) {
  static_assert(MR >= 1 && MR <= 6 && NV >= 1 && NV <= 2, "micro-tile is at most 6 x 2 ymm");
  VITINT_ACC_ROW(0);
  VITINT_ACC_ROW(1);
  VITINT_ACC_ROW(2);
  VITINT_ACC_ROW(3);
  VITINT_ACC_ROW(4);
  VITINT_ACC_ROW(5);
  const uint8_t* a = t.a;
  const int8_t* b = t.b;
  ptrdiff_t lda = t.lda;
  int groups = t.groups;
  // A may end inside the last group (B is zero-padded there): its bytes go
  // to a zero-padded copy that a second pass of the same loop reads.
  int32_t tail[MR];
  for (int pass = t.tail_bytes != 0 ? 2 : 1; pass > 0; --pass) {
    for (int g = 0; g < groups; ++g) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
      const __m256i b1 = NV > 1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32)) : b0;
      VITINT_ROW(0);
      VITINT_ROW(1);
      VITINT_ROW(2);
      VITINT_ROW(3);
      VITINT_ROW(4);
      VITINT_ROW(5);
      a += 4;
      b += 4 * kPanel;
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
  if (t.valid >= 8 * NV) {
    VITINT_STORE_C(0);
    VITINT_STORE_C(1);
    VITINT_STORE_C(2);
    VITINT_STORE_C(3);
    VITINT_STORE_C(4);
    VITINT_STORE_C(5);
    return;
  }
  alignas(32) int32_t out[MR][16];
  VITINT_STORE_ROW(0);
  VITINT_STORE_ROW(1);
  VITINT_STORE_ROW(2);
  VITINT_STORE_ROW(3);
  VITINT_STORE_ROW(4);
  VITINT_STORE_ROW(5);
  const int cols = std::min(t.valid, 8 * NV);
  for (int r = 0; r < MR; ++r) {
    int32_t* c = t.c + r * t.ldc;
    if (t.accumulate) {
      for (int j = 0; j < cols; ++j)  // int32 sums wrap like the vector adds
        c[j] = static_cast<int32_t>(static_cast<uint32_t>(c[j]) + static_cast<uint32_t>(out[r][j]));
    } else {
      std::memcpy(c, out[r], sizeof(int32_t) * static_cast<size_t>(cols));
    }
  }
}

#undef VITINT_ACC_ROW
#undef VITINT_ROW
#undef VITINT_STORE_ROW
#undef VITINT_STORE_C

using MicroKernel = void (*)(const Tile&);

template <int MR>
MicroKernel pick_nv(int nv) {
  return nv == 1 ? &micro_kernel<MR, 1> : &micro_kernel<MR, 2>;
}

MicroKernel pick(int mr, int nv) {
  switch (mr) {
    case 1:
      return pick_nv<1>(nv);
    case 2:
      return pick_nv<2>(nv);
    case 3:
      return pick_nv<3>(nv);
    case 4:
      return pick_nv<4>(nv);
    case 5:
      return pick_nv<5>(nv);
    default:
      return pick_nv<6>(nv);
  }
}

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
      } else if (cs == 1 && j + 8 <= n) {
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
  const int total_groups = (k + 3) / 4;
  const int tail_bytes = k % 4;
  const ptrdiff_t panel_bytes = ptrdiff_t{kPanel} * total_groups * 4;
  const auto* packed = static_cast<const int8_t*>(packed_b);
  Tile t{};
  t.lda = lda;
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
      t.valid = std::min(kPanel, n - j0);
      const int nv = t.valid > 8 ? 2 : 1;
      t.b = packed + (j0 / kPanel) * panel_bytes + ptrdiff_t{g0} * kPanel * 4;
      const MicroKernel full = pick(kMr, nv);
      for (int i0 = 0; i0 < m; i0 += kMr) {
        t.a = a + ptrdiff_t{i0} * lda + ptrdiff_t{g0} * 4;
        t.c = c + ptrdiff_t{i0} * ldc + j0;
        const int mr = std::min(kMr, m - i0);
        (mr == kMr ? full : pick(mr, nv))(t);
      }
    }
  }
}

namespace {
struct VnniDot {
  static __m256i pairs(__m256i acc, __m256i a, __m256i b) { return _mm256_dpwssd_avx_epi32(acc, a, b); }
};
}  // namespace

void avxvnni_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b, int32_t* c,
                           int ldc) {
  wide16::drive<VnniDot>(m, n, k, a, lda, packed_b, c, ldc);
}

}  // namespace vitint::kernels::detail
