// Isa dispatch and argument checks for the GEMM kernels (the paths themselves
// live in ref/ and x86/ and trust what is checked here).
#include "vitint/kernels/gemm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cpu_internal.h"
#include "gemm_internal.h"

namespace vitint::kernels {
namespace {

[[noreturn]] void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string("vitint::kernels::") + fn + ": " + what);
}

void check_dims(const char* fn, int m, int n, int k) {
  if (m < 0 || n < 0 || k < 0) {
    fail(fn, "negative size m=" + std::to_string(m) + " n=" + std::to_string(n) +
                 " k=" + std::to_string(k));
  }
}

void check_stride(const char* fn, const char* name, int stride, int min_stride) {
  if (stride < min_stride) {
    fail(fn, std::string(name) + "=" + std::to_string(stride) + " is below the row length " +
                 std::to_string(min_stride));
  }
}

void check_pack(const char* fn, Isa isa, int n, int k, const void* b, int ldb, int min_ldb,
                const void* packed) {
  detail::require_isa(fn, isa);
  check_dims(fn, 0, n, k);
  check_stride(fn, "ldb", ldb, min_ldb);
  if (n > 0 && k > 0 && (b == nullptr || packed == nullptr)) fail(fn, "null buffer");
}

// Returns false when there is nothing to multiply (C was cleared if k == 0).
bool check_gemm(const char* fn, Isa isa, int m, int n, int k, const void* a, int lda,
                const void* packed_b, int32_t* c, int ldc) {
  detail::require_isa(fn, isa);
  check_dims(fn, m, n, k);
  if (m == 0 || n == 0) return false;
  check_stride(fn, "lda", lda, k);
  check_stride(fn, "ldc", ldc, n);
  if (c == nullptr) fail(fn, "null C");
  if (k == 0) {
    for (int i = 0; i < m; ++i) std::fill_n(c + static_cast<ptrdiff_t>(i) * ldc, n, 0);
    return false;
  }
  if (a == nullptr || packed_b == nullptr) fail(fn, "null A or packed B");
  return true;
}

void pack_any(Isa isa, int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
              void* packed) {
  if (n == 0 || k == 0) return;
  switch (isa) {
    case Isa::kRef:
      detail::ref_pack_b(n, k, b, col_stride, k_stride, packed);
      return;
    case Isa::kAvx2:
      detail::avx2_pack_b(n, k, b, col_stride, k_stride, packed);
      return;
    case Isa::kAvxVnni:
      detail::avxvnni_pack_b(n, k, b, col_stride, k_stride, packed);
      return;
    case Isa::kAvx512Vnni:
      detail::avx512_pack_b(n, k, b, col_stride, k_stride, packed);
      return;
    case Isa::kAmx:
      detail::amx_pack_b(n, k, b, col_stride, k_stride, packed);
      return;
  }
}

}  // namespace

size_t packed_b_bytes(Isa isa, int n, int k) {
  check_dims("packed_b_bytes", 0, n, k);
  if (n == 0 || k == 0) return 0;
  switch (isa) {
    case Isa::kRef:
      return detail::ref_packed_b_bytes(n, k);
    case Isa::kAvx2:
      return detail::avx2_packed_b_bytes(n, k);
    case Isa::kAvxVnni:
      return detail::avxvnni_packed_b_bytes(n, k);
    case Isa::kAvx512Vnni:
      return detail::avx512_packed_b_bytes(n, k);
    case Isa::kAmx:
      return detail::amx_packed_b_bytes(n, k);
  }
  fail("packed_b_bytes", "invalid Isa value " + std::to_string(static_cast<int>(isa)));
}

void pack_b_s8(Isa isa, int n, int k, const int8_t* b, int ldb, void* packed) {
  check_pack("pack_b_s8", isa, n, k, b, ldb, k, packed);
  pack_any(isa, n, k, b, ldb, 1, packed);
}

void pack_b_s8_transposed(Isa isa, int n, int k, const int8_t* b_t, int ldb, void* packed) {
  check_pack("pack_b_s8_transposed", isa, n, k, b_t, ldb, n, packed);
  pack_any(isa, n, k, b_t, 1, ldb, packed);
}

namespace {

// The path's GEMM, arguments already checked.
void gemm_u8s8s32_path(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b, int32_t* c,
                       int ldc) {
  switch (isa) {
    case Isa::kRef:
      detail::ref_gemm_u8s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvx2:
      detail::avx2_gemm_u8s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvxVnni:
      detail::avxvnni_gemm_u8s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvx512Vnni:
      detail::avx512_gemm_u8s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAmx:
      detail::amx_gemm_u8s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
  }
}

// The fused GEMM of the paths without a fused kernel of their own: the
// path's GEMM on blocks of C (from a panel boundary j on, packed B bytes are
// a packed B of their own, packed_b_bytes(isa, j, k) bytes in, for every
// path and j a multiple of 64) into a scratch block, then the epilogue.
void fused_by_blocks(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                     const GemmEpilogue& ep) {
  alignas(64) int32_t block[kFusedBlockRows * kFusedBlockCols];
  const auto* packed = static_cast<const uint8_t*>(packed_b);
  for (int j = 0; j < n; j += kFusedBlockCols) {
    const int cols = std::min(kFusedBlockCols, n - j);
    const uint8_t* b = packed + packed_b_bytes(isa, j, k);
    for (int i = 0; i < m; i += kFusedBlockRows) {
      const int rows = std::min(kFusedBlockRows, m - i);
      gemm_u8s8s32_path(isa, rows, cols, k, a + static_cast<ptrdiff_t>(i) * lda, lda, b, block, kFusedBlockCols);
      ep.fn(ep.ctx, i, j, rows, cols, block, kFusedBlockCols);
    }
  }
}

}  // namespace

void gemm_u8s8s32(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                  int32_t* c, int ldc) {
  if (!check_gemm("gemm_u8s8s32", isa, m, n, k, a, lda, packed_b, c, ldc)) return;
  gemm_u8s8s32_path(isa, m, n, k, a, lda, packed_b, c, ldc);
}

void gemm_u8s8s32_fused(Isa isa, int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                        const GemmEpilogue& epilogue) {
  const char* fn = "gemm_u8s8s32_fused";
  detail::require_isa(fn, isa);
  check_dims(fn, m, n, k);
  if (m == 0 || n == 0) return;
  if (epilogue.fn == nullptr) fail(fn, "null epilogue function");
  if (k == 0) {
    // C is all zeros.
    alignas(64) int32_t zeros[kFusedBlockRows * kFusedBlockCols] = {};
    for (int j = 0; j < n; j += kFusedBlockCols)
      for (int i = 0; i < m; i += kFusedBlockRows)
        epilogue.fn(epilogue.ctx, i, j, std::min(kFusedBlockRows, m - i), std::min(kFusedBlockCols, n - j), zeros,
                    kFusedBlockCols);
    return;
  }
  check_stride(fn, "lda", lda, k);
  if (a == nullptr || packed_b == nullptr) fail(fn, "null A or packed B");
  if (isa == Isa::kAmx) {
    detail::amx_gemm_u8s8s32_fused(m, n, k, a, lda, packed_b, epilogue);
  } else {
    fused_by_blocks(isa, m, n, k, a, lda, packed_b, epilogue);
  }
}

size_t packed_b16_bytes(Isa isa, int n, int k) {
  check_dims("packed_b16_bytes", 0, n, k);
  if (n == 0 || k == 0) return 0;
  // The reference and AMX multiply int16 A with their uint8 GEMM's B layout.
  switch (isa) {
    case Isa::kRef:
    case Isa::kAmx:
      return packed_b_bytes(isa, n, k);
    case Isa::kAvx2:
    case Isa::kAvxVnni:
      return detail::avx2_packed_b_bytes(n, k);
    case Isa::kAvx512Vnni:
      return detail::avx512_packed_b16_bytes(n, k);
  }
  fail("packed_b16_bytes", "invalid Isa value " + std::to_string(static_cast<int>(isa)));
}

void pack_b16_s8_transposed(Isa isa, int n, int k, const int8_t* b_t, int ldb, void* packed) {
  check_pack("pack_b16_s8_transposed", isa, n, k, b_t, ldb, n, packed);
  if (n == 0 || k == 0) return;
  switch (isa) {
    case Isa::kRef:
    case Isa::kAmx:
      pack_any(isa, n, k, b_t, 1, ldb, packed);
      return;
    case Isa::kAvx2:
    case Isa::kAvxVnni:
      detail::avx2_pack_b(n, k, b_t, 1, ldb, packed);
      return;
    case Isa::kAvx512Vnni:
      detail::avx512_pack_b16(n, k, b_t, 1, ldb, packed);
      return;
  }
}

void gemm_s16s8s32(Isa isa, int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                   int32_t* c, int ldc) {
  if (!check_gemm("gemm_s16s8s32", isa, m, n, k, a, lda, packed_b, c, ldc)) return;
  switch (isa) {
    case Isa::kRef:
      detail::ref_gemm_s16s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvx2:
      detail::avx2_gemm_s16s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvxVnni:
      detail::avxvnni_gemm_s16s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAvx512Vnni:
      detail::avx512_gemm_s16s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
    case Isa::kAmx:
      detail::amx_gemm_s16s8s32(m, n, k, a, lda, packed_b, c, ldc);
      return;
  }
}

}  // namespace vitint::kernels
