// Per-path GEMM entry points behind the Isa dispatch in gemm.cpp.
//
// Each path owns its packed-B layout. Packing reads B[j][p] from
// b[j * col_stride + p * k_stride], which covers both the [n][k] source
// (col_stride = ldb, k_stride = 1) and its [k][n] transpose (col_stride = 1,
// k_stride = ldb) with one routine; the x86 packers rely on one of the two
// strides being 1. Arguments are validated by gemm.cpp;
// the functions here assume m, n, k >= 1 and a CPU that supports the path.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitint/kernels/gemm.h"

namespace vitint::kernels::detail {

// The SIMD micro-kernels (6 rows) keep each row's accumulators in named
// variables (GCC 12 keeps an array of vectors in memory and stores it back on
// every k step); VITINT_EACH_ROW(M) expands the per-row macro M for rows 0-5.
#define VITINT_EACH_ROW(M) \
  M(0);                    \
  M(1);                    \
  M(2);                    \
  M(3);                    \
  M(4);                    \
  M(5)

// x rounded up to a multiple of `to` (packing and padding of every path).
constexpr int round_up(int x, int to) { return (x + to - 1) / to * to; }

// Scalar reference (normative). Packed B: int8 [n][k], densely stored.
size_t ref_packed_b_bytes(int n, int k);
void ref_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                void* packed);
void ref_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                      int32_t* c, int ldc);
void ref_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc);

// AVX2: B widened to int16 (vpmaddwd keeps products and pair sums exact).
// The same layout serves the uint8 and the int16 A operand.
size_t avx2_packed_b_bytes(int n, int k);
void avx2_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                 void* packed);
void avx2_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc);
void avx2_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                        int32_t* c, int ldc);

// AVX-512 VNNI: vpdpbusd on int8 B in groups of 4 k-values, vpdpwssd on
// int16-widened B in groups of 2.
size_t avx512_packed_b_bytes(int n, int k);
void avx512_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                   void* packed);
void avx512_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                         int32_t* c, int ldc);
size_t avx512_packed_b16_bytes(int n, int k);
void avx512_pack_b16(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                     void* packed);
void avx512_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                          int32_t* c, int ldc);
// The VNNI-4 packing behind avx512_pack_b, shared with the AMX layout: panels
// of `panel` columns (the last narrower, zero-padded to a multiple of 16),
// each [k_pad / 4][width][4] bytes, zero past n and k.
void avx512_pack_vnni4(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                       int panel, int k_pad, void* packed);

// AVX-VNNI: uint8 B in 16-column panels of 4-byte k-groups; the int16
// GEMM takes the AVX2 path's packed B (avx2_pack_b).
size_t avxvnni_packed_b_bytes(int n, int k);
void avxvnni_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride, void* packed);
void avxvnni_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                          int32_t* c, int ldc);
void avxvnni_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                           int32_t* c, int ldc);

// AMX-INT8: B in 16-column x 64-k tiles (VNNI-4 rows), for both GEMMs (the
// int16 one splits A into bytes, see gemm_amx.cpp).
size_t amx_packed_b_bytes(int n, int k);
void amx_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                void* packed);
void amx_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                      int32_t* c, int ldc);
void amx_gemm_u8s8s32_fused(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                            const GemmEpilogue& epilogue);
void amx_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc);

}  // namespace vitint::kernels::detail
