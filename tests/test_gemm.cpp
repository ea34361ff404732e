// Integer GEMM kernels: the scalar reference against hand-computed values, and
// every supported path against the reference, bit for bit.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "isas.h"
#include "vitint/kernels/gemm.h"

namespace vk = vitint::kernels;

namespace {

constexpr int32_t kSentinel = 0x5A5A5A5A;

using vitint::test::supported_isas;

// Runs one GEMM the way a caller would: pack B (from [n][k] or from its
// [k][n] transpose), then multiply into a C whose row padding holds a
// sentinel that must survive.
struct Problem {
  int m, n, k;
  int lda, ldb, ldc;         // ldb is the [n][k] source's stride
  std::vector<uint8_t> a8;   // [m][lda]
  std::vector<int16_t> a16;  // [m][lda]
  std::vector<int8_t> b;     // [n][ldb]
};

std::vector<int8_t> transpose_b(const Problem& pr, int ldbt) {
  std::vector<int8_t> bt(static_cast<size_t>(pr.k) * ldbt, 0);
  for (int j = 0; j < pr.n; ++j) {
    for (int p = 0; p < pr.k; ++p)
      bt[static_cast<size_t>(p) * ldbt + j] = pr.b[static_cast<size_t>(j) * pr.ldb + p];
  }
  return bt;
}

// A is pr.a8, or the same rows at `a` (another placement of the same data).
std::vector<int32_t> run_u8(vk::Isa isa, const Problem& pr, bool transposed_pack, const uint8_t* a = nullptr) {
  std::vector<uint8_t> packed(vk::packed_b_bytes(isa, pr.n, pr.k) + 1);
  if (transposed_pack) {
    const int ldbt = pr.n + 3;
    const std::vector<int8_t> bt = transpose_b(pr, ldbt);
    vk::pack_b_s8_transposed(isa, pr.n, pr.k, bt.data(), ldbt, packed.data());
  } else {
    vk::pack_b_s8(isa, pr.n, pr.k, pr.b.data(), pr.ldb, packed.data());
  }
  std::vector<int32_t> c(static_cast<size_t>(pr.m) * pr.ldc, kSentinel);
  vk::gemm_u8s8s32(isa, pr.m, pr.n, pr.k, a ? a : pr.a8.data(), pr.lda, packed.data(), c.data(), pr.ldc);
  return c;
}

std::vector<int32_t> run_s16(vk::Isa isa, const Problem& pr) {
  std::vector<uint8_t> packed(vk::packed_b16_bytes(isa, pr.n, pr.k) + 1);
  const int ldbt = pr.n + 1;
  const std::vector<int8_t> bt = transpose_b(pr, ldbt);
  vk::pack_b16_s8_transposed(isa, pr.n, pr.k, bt.data(), ldbt, packed.data());
  std::vector<int32_t> c(static_cast<size_t>(pr.m) * pr.ldc, kSentinel);
  vk::gemm_s16s8s32(isa, pr.m, pr.n, pr.k, pr.a16.data(), pr.lda, packed.data(), c.data(), pr.ldc);
  return c;
}

// One CHECK over the whole C buffer (values and untouched row padding); on a
// mismatch the message names the path, the shape and the first bad element.
void check_same(const std::vector<int32_t>& got, const std::vector<int32_t>& want, vk::Isa isa,
                const Problem& pr, const char* what) {
  REQUIRE(got.size() == want.size());
  long first = -1;
  long bad = 0;
  for (size_t x = 0; x < got.size(); ++x) {
    if (got[x] != want[x]) {
      if (first < 0) first = static_cast<long>(x);
      ++bad;
    }
  }
  if (first < 0) {
    CHECK(bad == 0);
    return;
  }
  std::ostringstream msg;
  msg << what << ": isa=" << vk::isa_name(isa) << " m=" << pr.m << " n=" << pr.n << " k=" << pr.k
      << " lda=" << pr.lda << " ldc=" << pr.ldc << ": " << bad
      << " mismatches, first at i=" << first / pr.ldc << " j=" << first % pr.ldc << " got "
      << got[first] << " want " << want[first];
  INFO(msg.str());
  CHECK(bad == 0);
}

enum class Fill { kRandom, kExtremeNeg, kExtremePos, kAlternating };

Problem make_problem(int m, int n, int k, Fill fill, std::mt19937& rng, bool padded) {
  Problem pr{m, n, k, k + (padded ? 5 : 0), k + (padded ? 3 : 0), n + (padded ? 7 : 0), {}, {}, {}};
  pr.a8.assign(static_cast<size_t>(m) * pr.lda, 0);
  pr.a16.assign(static_cast<size_t>(m) * pr.lda, 0);
  pr.b.assign(static_cast<size_t>(n) * pr.ldb, 0);
  std::uniform_int_distribution<int> u8(0, 255);
  std::uniform_int_distribution<int> s8(-128, 127);
  std::uniform_int_distribution<int> s16(-32768, 32767);
  // Garbage in the stride padding must not leak into C.
  for (auto& x : pr.a8) x = static_cast<uint8_t>(u8(rng));
  for (auto& x : pr.a16) x = static_cast<int16_t>(s16(rng));
  for (auto& x : pr.b) x = static_cast<int8_t>(s8(rng));
  for (int i = 0; i < m; ++i) {
    for (int p = 0; p < k; ++p) {
      const size_t at = static_cast<size_t>(i) * pr.lda + p;
      switch (fill) {
        case Fill::kRandom:
          break;
        case Fill::kExtremeNeg:
        case Fill::kExtremePos:
          pr.a8[at] = 255;
          pr.a16[at] = 32767;
          break;
        case Fill::kAlternating:
          pr.a8[at] = (i + p) % 2 == 0 ? 255 : 0;
          pr.a16[at] = static_cast<int16_t>((i + p) % 2 == 0 ? 32767 : -32768);
          break;
      }
    }
  }
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < k; ++p) {
      const size_t at = static_cast<size_t>(j) * pr.ldb + p;
      switch (fill) {
        case Fill::kRandom:
          break;
        case Fill::kExtremeNeg:
          pr.b[at] = -128;
          break;
        case Fill::kExtremePos:
          pr.b[at] = 127;
          break;
        case Fill::kAlternating:
          pr.b[at] = (j + p) % 2 == 0 ? int8_t{-128} : int8_t{127};
          break;
      }
    }
  }
  return pr;
}

void compare_all_paths_u8(const Problem& pr, bool both_packings) {
  const std::vector<int32_t> want = run_u8(vk::Isa::kRef, pr, false);
  for (vk::Isa isa : supported_isas()) {
    if (isa != vk::Isa::kRef) check_same(run_u8(isa, pr, false), want, isa, pr, "gemm_u8s8s32");
    if (both_packings) {
      check_same(run_u8(isa, pr, true), want, isa, pr, "gemm_u8s8s32 (transposed pack)");
    }
  }
}

void compare_all_paths_s16(const Problem& pr) {
  const std::vector<int32_t> want = run_s16(vk::Isa::kRef, pr);
  for (vk::Isa isa : supported_isas()) {
    if (isa != vk::Isa::kRef) check_same(run_s16(isa, pr), want, isa, pr, "gemm_s16s8s32");
  }
}

const int kAwkward[] = {1, 15, 16, 17, 31, 32, 33, 197, 384, 768, 3072};

}  // namespace

TEST_CASE("gemm ref: hand-computed 2x3x4 uint8 x int8") {
  const uint8_t a[] = {1, 2, 3, 4, 255, 0, 128, 7};
  const int8_t b[] = {1, -1, 2, -2, 127, -128, 0, 1, -128, -128, -128, -128};
  const int32_t want[] = {-3, -125, -1280, 497, 32392, -49920};
  std::vector<uint8_t> packed(vk::packed_b_bytes(vk::Isa::kRef, 3, 4));
  vk::pack_b_s8(vk::Isa::kRef, 3, 4, b, 4, packed.data());
  int32_t c[6] = {};
  vk::gemm_u8s8s32(vk::Isa::kRef, 2, 3, 4, a, 4, packed.data(), c, 3);
  for (int x = 0; x < 6; ++x) CHECK(c[x] == want[x]);
}

TEST_CASE("gemm ref: hand-computed 2x2x3 int16 x int8") {
  const int16_t a[] = {32767, -32768, 1, 0, 2, 3};
  const int8_t b_t[] = {1, -128, 2, 127, 3, -1};  // [k=3][n=2]
  const int32_t want[] = {-32766, -8355713, 13, 251};
  std::vector<uint8_t> packed(vk::packed_b16_bytes(vk::Isa::kRef, 2, 3));
  vk::pack_b16_s8_transposed(vk::Isa::kRef, 2, 3, b_t, 2, packed.data());
  int32_t c[4] = {};
  vk::gemm_s16s8s32(vk::Isa::kRef, 2, 2, 3, a, 3, packed.data(), c, 2);
  for (int x = 0; x < 4; ++x) CHECK(c[x] == want[x]);
}

TEST_CASE("gemm ref: matches a naive int64 triple loop") {
  std::mt19937 rng(7);
  for (int k : {1, 5, 64, 300}) {
    const Problem pr = make_problem(9, 13, k, Fill::kRandom, rng, true);
    const std::vector<int32_t> got = run_u8(vk::Isa::kRef, pr, false);
    const std::vector<int32_t> got16 = run_s16(vk::Isa::kRef, pr);
    long bad = 0;
    for (int i = 0; i < pr.m; ++i) {
      for (int j = 0; j < pr.n; ++j) {
        int64_t s8 = 0;
        int64_t s16 = 0;
        for (int p = 0; p < k; ++p) {
          const int64_t bv = pr.b[static_cast<size_t>(j) * pr.ldb + p];
          s8 += pr.a8[static_cast<size_t>(i) * pr.lda + p] * bv;
          s16 += pr.a16[static_cast<size_t>(i) * pr.lda + p] * bv;
        }
        const size_t at = static_cast<size_t>(i) * pr.ldc + j;
        bad += got[at] != s8;
        bad += got16[at] != s16;
      }
    }
    INFO("k=" << k);
    CHECK(bad == 0);
  }
}

TEST_CASE("gemm: every path packs identically from B and from its transpose") {
  std::mt19937 rng(11);
  for (vk::Isa isa : supported_isas()) {
    for (int n : {1, 16, 17, 64, 65, 197}) {
      for (int k : {1, 2, 3, 64, 65, 197, 256}) {
        const Problem pr = make_problem(1, n, k, Fill::kRandom, rng, true);
        const size_t bytes = vk::packed_b_bytes(isa, n, k);
        std::vector<uint8_t> p1(bytes, 0xCD);
        std::vector<uint8_t> p2(bytes, 0xEF);
        vk::pack_b_s8(isa, n, k, pr.b.data(), pr.ldb, p1.data());
        const int ldbt = n + 2;
        const std::vector<int8_t> bt = transpose_b(pr, ldbt);
        vk::pack_b_s8_transposed(isa, n, k, bt.data(), ldbt, p2.data());
        INFO("isa=" << vk::isa_name(isa) << " n=" << n << " k=" << k);
        CHECK(std::memcmp(p1.data(), p2.data(), bytes) == 0);
      }
    }
  }
}

TEST_CASE("gemm_u8s8s32: all paths equal the reference over awkward sizes") {
  std::mt19937 rng(1234);
  for (int m : kAwkward) {
    for (int n : kAwkward) {
      for (int k : kAwkward) {
        // The scalar reference bounds the budget: keep each case small,
        // except the few big ones every shape class needs.
        const double macs = double(m) * n * k;
        if (macs > 8e6) continue;
        const bool padded = (m + n + k) % 2 == 1;
        compare_all_paths_u8(make_problem(m, n, k, Fill::kRandom, rng, padded),
                             /*both_packings=*/(m * n) % 3 == 0);
      }
    }
  }
}

TEST_CASE("gemm_u8s8s32: ViT shapes and long k") {
  std::mt19937 rng(99);
  struct Shape {
    int m, n, k;
  };
  const Shape shapes[] = {
      {197, 576, 192},  // DeiT-Tiny qkv
      {197, 192, 768},  // DeiT-Tiny fc2
      {197, 197, 64},   // q.k^T per head
      {197, 64, 197},   // attn@V shape through the uint8 kernel
      {33, 3072, 33},  {17, 33, 3072}, {197, 17, 3072}, {31, 768, 384},
  };
  for (const Shape& s : shapes) {
    compare_all_paths_u8(make_problem(s.m, s.n, s.k, Fill::kRandom, rng, s.m % 2 == 1),
                         /*both_packings=*/s.k == 64);
  }
}

TEST_CASE("gemm_u8s8s32: edge values cannot saturate") {
  std::mt19937 rng(5);
  for (Fill fill : {Fill::kExtremeNeg, Fill::kExtremePos, Fill::kAlternating}) {
    for (int m : {1, 17, 33}) {
      for (int n : {15, 33, 197}) {
        for (int k : {1, 2, 3, 16, 33, 768, 3072}) {
          compare_all_paths_u8(make_problem(m, n, k, fill, rng, k % 2 == 1), false);
        }
      }
    }
  }
  // The all-extreme sum itself, independent of the reference.
  const Problem pr = make_problem(3, 5, 3072, Fill::kExtremeNeg, rng, false);
  for (vk::Isa isa : supported_isas()) {
    const std::vector<int32_t> c = run_u8(isa, pr, false);
    INFO("isa=" << vk::isa_name(isa));
    CHECK(c[0] == 255 * -128 * 3072);
    CHECK(c[14] == 255 * -128 * 3072);
  }
}

namespace {

// A fused GEMM's epilogue that copies each block into a C matrix and counts
// how often every element was delivered.
struct Collect {
  std::vector<int32_t>* c;
  std::vector<int>* seen;
  int ldc;
  bool oversize = false;
  static void fn(const void* self, int row, int col, int rows, int cols, const int32_t* blk, int ld) {
    auto& e = *const_cast<Collect*>(static_cast<const Collect*>(self));
    if (rows > vk::kFusedBlockRows || cols > vk::kFusedBlockCols || rows < 1 || cols < 1) e.oversize = true;
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) {
        const size_t at = static_cast<size_t>(row + i) * e.ldc + col + j;
        (*e.c)[at] = blk[static_cast<size_t>(i) * ld + j];
        ++(*e.seen)[at];
      }
  }
};

std::vector<int32_t> run_u8_fused(vk::Isa isa, const Problem& pr, bool* once, const uint8_t* a = nullptr) {
  std::vector<uint8_t> packed(vk::packed_b_bytes(isa, pr.n, pr.k) + 1);
  vk::pack_b_s8(isa, pr.n, pr.k, pr.b.data(), pr.ldb, packed.data());
  std::vector<int32_t> c(static_cast<size_t>(pr.m) * pr.ldc, kSentinel);
  std::vector<int> seen(c.size(), 0);
  Collect col{&c, &seen, pr.ldc};
  vk::gemm_u8s8s32_fused(isa, pr.m, pr.n, pr.k, a ? a : pr.a8.data(), pr.lda, packed.data(), {&Collect::fn, &col});
  *once = !col.oversize;
  for (int i = 0; i < pr.m; ++i)
    for (int j = 0; j < pr.ldc; ++j) *once = *once && seen[static_cast<size_t>(i) * pr.ldc + j] == (j < pr.n ? 1 : 0);
  return c;
}

}  // namespace

TEST_CASE("gemm_u8s8s32_fused: every path delivers each element of the reference C once") {
  std::mt19937 rng(77);
  for (int m : kAwkward) {
    for (int n : kAwkward) {
      for (int k : {1, 17, 64, 197, 384, 1536}) {
        if (double(m) * n * k > 4e6) continue;
        const Problem pr = make_problem(m, n, k, Fill::kRandom, rng, (m + n) % 2 == 1);
        const std::vector<int32_t> want = run_u8(vk::Isa::kRef, pr, false);
        for (vk::Isa isa : supported_isas()) {
          bool once = false;
          check_same(run_u8_fused(isa, pr, &once), want, isa, pr, "gemm_u8s8s32_fused");
          INFO("isa=" << vk::isa_name(isa) << " m=" << m << " n=" << n << " k=" << k);
          CHECK(once);
        }
      }
    }
  }
}

TEST_CASE("gemm_s16s8s32: all paths equal the reference") {
  std::mt19937 rng(4321);
  const int ms[] = {1, 15, 16, 17, 33, 197};
  const int ns[] = {1, 15, 16, 17, 31, 32, 33, 64, 197};
  const int ks[] = {1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 197, 256};
  for (int m : ms) {
    for (int n : ns) {
      for (int k : ks) {
        if (double(m) * n * k > 3e6) continue;
        compare_all_paths_s16(make_problem(m, n, k, Fill::kRandom, rng, (m + k) % 2 == 0));
      }
    }
  }
  for (Fill fill : {Fill::kExtremeNeg, Fill::kExtremePos, Fill::kAlternating}) {
    for (int k : {1, 63, 197, 256}) {
      compare_all_paths_s16(make_problem(19, 70, k, fill, rng, true));
    }
  }
  // Longer rows of weights (577 tokens: 384x384 images; 1536): the AMX path
  // runs all k-tiles of a block in one pass.
  for (int k : {577, 1536}) compare_all_paths_s16(make_problem(33, 64, k, Fill::kRandom, rng, true));
}

TEST_CASE("gemm: degenerate and invalid arguments") {
  for (vk::Isa isa : supported_isas()) {
    INFO("isa=" << vk::isa_name(isa));
    // k == 0: the empty sum.
    int32_t c[6] = {1, 2, 3, 4, 5, 6};
    const uint8_t a[1] = {0};
    const uint8_t packed[1] = {0};
    vk::gemm_u8s8s32(isa, 2, 3, 0, a, 0, packed, c, 3);
    for (int32_t v : c) CHECK(v == 0);
    {  // and through a fused epilogue
      std::vector<int32_t> cf(6, 7);
      std::vector<int> seen(6, 0);
      Collect col{&cf, &seen, 3};
      vk::gemm_u8s8s32_fused(isa, 2, 3, 0, a, 0, packed, {&Collect::fn, &col});
      for (size_t x = 0; x < cf.size(); ++x) CHECK((cf[x] == 0 && seen[x] == 1));
      CHECK_THROWS_AS(vk::gemm_u8s8s32_fused(isa, 2, 3, 4, a, 4, packed, {nullptr, nullptr}), std::invalid_argument);
      CHECK_THROWS_AS(vk::gemm_u8s8s32_fused(isa, 2, 3, 4, a, 3, packed, {&Collect::fn, &col}), std::invalid_argument);
    }
    CHECK(vk::packed_b_bytes(isa, 0, 5) == 0);
    CHECK_THROWS_AS(vk::gemm_u8s8s32(isa, -1, 3, 4, a, 4, packed, c, 3), std::invalid_argument);
    CHECK_THROWS_AS(vk::gemm_u8s8s32(isa, 2, 3, 4, a, 3, packed, c, 3), std::invalid_argument);
    CHECK_THROWS_AS(vk::gemm_u8s8s32(isa, 2, 3, 4, a, 4, packed, c, 2), std::invalid_argument);
    int8_t b[4] = {};
    std::vector<uint8_t> pb(vk::packed_b_bytes(isa, 2, 2));
    CHECK_THROWS_AS(vk::pack_b_s8(isa, 2, 2, b, 1, pb.data()), std::invalid_argument);
    CHECK_THROWS_AS(vk::pack_b_s8_transposed(isa, 2, 2, b, 1, pb.data()), std::invalid_argument);
  }
  for (vk::Isa isa : {vk::Isa::kAvx2, vk::Isa::kAvx512Vnni, vk::Isa::kAmx}) {
    if (vk::isa_supported(isa)) continue;
    int8_t b[4] = {};
    std::vector<uint8_t> pb(64 * 64);
    CHECK_THROWS_AS(vk::pack_b_s8(isa, 2, 2, b, 2, pb.data()), std::runtime_error);
  }
}

// The AMX path reads A's tiles in place where A and its rows are 64-byte
// aligned (a row's tile reads then stay inside its stride), in one pass over
// k (k up to 768) or several (832, 1000, 1536), copying a partial last row
// tile and, for k not a multiple of 64, the tile with A's last row;
// otherwise it copies A. Both placements, every path, plain and fused,
// against the reference (garbage in the stride padding, which the in-place
// reads see past k).
TEST_CASE("gemm_u8s8s32: A at 64-byte aligned and unaligned addresses") {
  std::mt19937 rng(4242);
  for (int k : {1, 64, 100, 192, 197, 384, 768, 832, 1000, 1536}) {
    // 300 rows: two chunks of the AMX driver (256 rows each), both in place.
    for (int m : {1, 15, 16, 17, 31, 32, 33, 197, 300}) {
      for (int n : {17, 197}) {
        Problem pr = make_problem(m, n, k, Fill::kRandom, rng, false);
        // Rows 64-byte multiples apart (a padded stride for some).
        const int lda = (k + 63) / 64 * 64 + (m % 2 == 1 ? 64 : 0);
        std::vector<uint8_t> a8(static_cast<size_t>(m) * lda);
        for (auto& x : a8) x = static_cast<uint8_t>(rng());
        for (int i = 0; i < m; ++i)
          std::memcpy(&a8[static_cast<size_t>(i) * lda], &pr.a8[static_cast<size_t>(i) * pr.lda], static_cast<size_t>(k));
        pr.a8 = a8;
        pr.lda = lda;
        const std::vector<int32_t> want = run_u8(vk::Isa::kRef, pr, false);
        std::vector<uint8_t> storage(pr.a8.size() + 128);
        for (size_t offset : {size_t{0}, size_t{1}}) {
          const auto addr = reinterpret_cast<uintptr_t>(storage.data());
          uint8_t* a = storage.data() + (64 - addr % 64) % 64 + offset;
          std::memcpy(a, pr.a8.data(), pr.a8.size());
          for (vk::Isa isa : supported_isas()) {
            INFO("isa=" << vk::isa_name(isa) << " m=" << m << " n=" << n << " k=" << k << " A offset " << offset);
            check_same(run_u8(isa, pr, false, a), want, isa, pr, "gemm_u8s8s32 (placed A)");
            bool once = false;
            check_same(run_u8_fused(isa, pr, &once, a), want, isa, pr, "gemm_u8s8s32_fused (placed A)");
            CHECK(once);
          }
        }
      }
    }
  }
}
