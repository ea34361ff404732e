// Normative scalar GEMMs: every other path must match these bit for bit.
#include "../gemm_internal.h"

namespace vitint::kernels::detail {

size_t ref_packed_b_bytes(int n, int k) { return static_cast<size_t>(n) * static_cast<size_t>(k); }

void ref_pack_b(int n, int k, const int8_t* b, ptrdiff_t col_stride, ptrdiff_t k_stride,
                void* packed) {
  auto* dst = static_cast<int8_t*>(packed);
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < k; ++p) {
      dst[static_cast<ptrdiff_t>(j) * k + p] = b[j * col_stride + p * k_stride];
    }
  }
}

namespace {

template <typename A>
void ref_gemm(int m, int n, int k, const A* a, int lda, const void* packed_b, int32_t* c, int ldc) {
  const auto* b = static_cast<const int8_t*>(packed_b);
  for (int i = 0; i < m; ++i) {
    const A* a_row = a + static_cast<ptrdiff_t>(i) * lda;
    int32_t* c_row = c + static_cast<ptrdiff_t>(i) * ldc;
    for (int j = 0; j < n; ++j) {
      const int8_t* b_row = b + static_cast<ptrdiff_t>(j) * k;
      // int64 so that even out-of-contract inputs have a defined result
      // (the int32 truncation below) instead of signed-overflow UB.
      int64_t sum = 0;
      for (int p = 0; p < k; ++p) sum += int64_t{a_row[p]} * int64_t{b_row[p]};
      c_row[j] = static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(sum)));
    }
  }
}

}  // namespace

void ref_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                      int32_t* c, int ldc) {
  ref_gemm(m, n, k, a, lda, packed_b, c, ldc);
}

void ref_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc) {
  ref_gemm(m, n, k, a, lda, packed_b, c, ldc);
}

}  // namespace vitint::kernels::detail
