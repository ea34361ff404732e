// Integer GEMM micro-kernels. Every path is bit-exact with the scalar reference.
//
// The kernels compute raw integer dot products; zero points, bias and
// requantization are applied by the caller's epilogue.
#pragma once
#include <cstddef>
#include <cstdint>

#include "vitint/kernels/cpu.h"

namespace vitint::kernels {

// B operand packed for one path. B is logically [n][k] (one row per output
// column, i.e. PyTorch's Linear weight layout). The packed layout is private to
// the path; size and packing go through these functions.
size_t packed_b_bytes(Isa isa, int n, int k);
// Packs B from b[j * ldb + p] (j < n, p < k).
void pack_b_s8(Isa isa, int n, int k, const int8_t* b, int ldb, void* packed);
// Packs B from its transpose: b_t[p * ldb + j] (p < k, j < n) holds B[j][p].
void pack_b_s8_transposed(Isa isa, int n, int k, const int8_t* b_t, int ldb, void* packed);

// C[i][j] = sum_p A[i][p] * B[j][p] with A uint8 [m][k] (row stride lda),
// int32 result C [m][n] (row stride ldc). Exact: no saturation anywhere
// (k <= 65536 keeps the sum inside int32).
void gemm_u8s8s32(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                  int32_t* c, int ldc);

// The epilogue of a fused GEMM: receives C in blocks (rows [row, row + rows)
// x columns [col, col + cols), at c with row stride ldc, in a scratch buffer
// of the kernel), every element exactly once, in an unspecified order.
// Blocks are at most kFusedBlockRows x kFusedBlockCols.
constexpr int kFusedBlockRows = 64;
constexpr int kFusedBlockCols = 64;
struct GemmEpilogue {
  void (*fn)(const void* ctx, int row, int col, int rows, int cols, const int32_t* c, int ldc);
  const void* ctx;
};
// gemm_u8s8s32 whose int32 result goes block by block to `epilogue` instead
// of into a C matrix: the accumulators stay in L1 (32 x 32 blocks straight
// out of the tiles on the AMX path, 64 x 64 on the others).
void gemm_u8s8s32_fused(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                        const GemmEpilogue& epilogue);

// Same with an int16 A operand (the 2^(14 - code) weights of Log-Int-Softmax
// attention); |A| <= 2^15 and k <= 256 keep the sum inside int32. The AMX
// path multiplies A's low bytes (uint8) and high bytes (int8) separately
// and adds the high products times 256.
size_t packed_b16_bytes(Isa isa, int n, int k);
void pack_b16_s8_transposed(Isa isa, int n, int k, const int8_t* b_t, int ldb, void* packed);
void gemm_s16s8s32(Isa isa, int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                   int32_t* c, int ldc);

}  // namespace vitint::kernels
