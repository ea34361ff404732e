// AMX-INT8 GEMM: tdpbusd on 16 x 64-byte tiles (16 rows x 64 k-values of A,
// 16 k-groups x 16 columns x 4 k-values of B, 16 x 16 int32 of C). The dot
// products are exact (no saturation), so the result matches the reference.
//
// Packed B: per 16-column tile column, k zero-padded to a multiple of 64 and
// stored as (k / 4) rows of 64 bytes (row r = 16 columns x k-values 4r..4r+3),
// so each 64-k slice is one contiguous 1 KiB tile.
//
// Blocking: 2 x 2 C tiles (32 rows x 32 columns) stay in tile registers for
// the whole k loop, fed by 2 A and 2 B tiles. Column pairs are the outer
// loop so that B is read from memory once and its 32-column panel stays in
// L1/L2 while A (at most 197 x 3072 bytes in ViT-B) comes from L2. A is first
// copied into contiguous zero-padded tiles (see amx_gemm_u8s8s32).
//
// AMX has no int16 multiply; gemm.cpp routes the kAmx int16 GEMM to the
// AVX-512 kernels.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../gemm_internal.h"

namespace vitint::kernels::detail {
namespace {

constexpr int kTileRows = 16;
constexpr int kTileK = 64;                      // k-values per tile slice
constexpr int kTileBytes = kTileRows * kTileK;  // 1 KiB

int round_up(int x, int to) { return (x + to - 1) / to * to; }

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0-3: C, 4-5: A, 6-7: B; all 16 rows x 64 bytes.
constexpr TileConfig make_config() {
  TileConfig cfg{};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = kTileRows;
  }
  return cfg;
}
// A global, not a local: GCC 12's _tile_loadconfig tells the compiler it
// reads only the first 8 bytes of the config, so the stores that fill a
// local config can be dropped as dead (and the tiles then fault).
constexpr TileConfig kTileConfig = make_config();

void load_config() { _tile_loadconfig(&kTileConfig); }

struct Block {
  const uint8_t* a[2];  // A tile rows, per row tile
  ptrdiff_t a_stride[2];
  const int8_t* b[2];  // packed B tile column, per column tile
  int k_tiles;
  int32_t* c;  // C at the block's top-left
  ptrdiff_t ldc;
  int rows;  // valid rows of the block (1..32)
  int cols;  // valid columns (1..32)
};

// store(ptr, stride_bytes) issues tilestored on one fixed tile (GCC's
// _tile_stored takes the tile number as a literal, not a value).
template <typename Store>
void store_tile(const Block& blk, int rt, int ct, Store store) {
  const int rows = std::min(kTileRows, blk.rows - rt * kTileRows);
  const int cols = std::min(16, blk.cols - ct * 16);
  int32_t* dst = blk.c + rt * kTileRows * blk.ldc + ct * 16;
  const ptrdiff_t stride_bytes = blk.ldc * static_cast<ptrdiff_t>(sizeof(int32_t));
  if (rows == kTileRows && cols == 16) {
    store(dst, stride_bytes);
    return;
  }
  alignas(64) int32_t tmp[kTileRows * 16];
  store(tmp, ptrdiff_t{64});
  for (int r = 0; r < rows; ++r) {
    std::memcpy(dst + r * blk.ldc, tmp + r * 16, static_cast<size_t>(cols) * sizeof(int32_t));
  }
}

template <int MT, int NT>
void block_kernel(const Block& blk) {
  _tile_zero(0);
  if constexpr (NT > 1) _tile_zero(1);
  if constexpr (MT > 1) _tile_zero(2);
  if constexpr (MT > 1 && NT > 1) _tile_zero(3);
  for (int kt = 0; kt < blk.k_tiles; ++kt) {
    _tile_loadd(4, blk.a[0] + kt * kTileBytes, blk.a_stride[0]);
    _tile_loadd(6, blk.b[0] + kt * kTileBytes, 64);
    if constexpr (NT > 1) _tile_loadd(7, blk.b[1] + kt * kTileBytes, 64);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NT > 1) _tile_dpbusd(1, 4, 7);
    if constexpr (MT > 1) {
      _tile_loadd(5, blk.a[1] + kt * kTileBytes, blk.a_stride[1]);
      _tile_dpbusd(2, 5, 6);
      if constexpr (NT > 1) _tile_dpbusd(3, 5, 7);
    }
  }
  store_tile(blk, 0, 0, [](void* p, ptrdiff_t s) { _tile_stored(0, p, s); });
  if constexpr (NT > 1) {
    store_tile(blk, 0, 1, [](void* p, ptrdiff_t s) { _tile_stored(1, p, s); });
  }
  if constexpr (MT > 1) {
    store_tile(blk, 1, 0, [](void* p, ptrdiff_t s) { _tile_stored(2, p, s); });
  }
  if constexpr (MT > 1 && NT > 1) {
    store_tile(blk, 1, 1, [](void* p, ptrdiff_t s) { _tile_stored(3, p, s); });
  }
}

// A's tile copy: 64-byte aligned (a tile row that straddles two cache lines
// made tile loads of A ~20% slower; malloc aligns to 16 bytes only).
uint8_t* a_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < bytes + 63) buf.resize(bytes + 63);
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  return buf.data() + (64 - addr % 64) % 64;
}

}  // namespace

size_t amx_packed_b_bytes(int n, int k) {
  return static_cast<size_t>(round_up(n, 16)) * static_cast<size_t>(round_up(k, kTileK));
}

void amx_pack_b(int n, int k, const int8_t* b, ptrdiff_t cs, ptrdiff_t ks, void* packed) {
  // A 16-column tile column is the AVX-512 layout with 16-column panels.
  avx512_pack_vnni4(n, k, b, cs, ks, 16, round_up(k, kTileK), packed);
}

void amx_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                      int32_t* c, int ldc) {
  const int k_pad = round_up(k, kTileK);
  const int k_tiles = k_pad / kTileK;
  const int m_tiles = (m + kTileRows - 1) / kTileRows;
  const int n_tiles = round_up(n, 16) / 16;
  const auto* packed = static_cast<const int8_t*>(packed_b);

  // A is copied into contiguous 16 x 64 tiles, [row tile][k tile][16][64],
  // zero-padded to whole tiles: contiguous tile loads run markedly faster
  // than 16 rows strided by lda, and no tile read leaves A.
  uint8_t* const buf = a_buffer(static_cast<size_t>(m_tiles) * kTileRows * static_cast<size_t>(k_pad));
  const int k_full = k / kTileK;  // whole 64-byte chunks per row
  const auto tail_mask = static_cast<__mmask64>(k % kTileK == 0 ? 0 : (~0ull >> (64 - k % kTileK)));
  for (int i = 0; i < m_tiles * kTileRows; ++i) {
    uint8_t* dst = buf + ptrdiff_t{i / kTileRows} * kTileRows * k_pad + (i % kTileRows) * kTileK;
    if (i >= m) {
      for (int kt = 0; kt < k_tiles; ++kt)
        _mm512_storeu_si512(dst + kt * kTileBytes, _mm512_setzero_si512());
      continue;
    }
    const uint8_t* src = a + ptrdiff_t{i} * lda;
    for (int kt = 0; kt < k_full; ++kt) {
      _mm512_storeu_si512(dst + kt * kTileBytes, _mm512_loadu_si512(src + kt * kTileK));
    }
    if (k_full < k_tiles) {
      _mm512_storeu_si512(dst + k_full * kTileBytes,
                          _mm512_maskz_loadu_epi8(tail_mask, src + k_full * kTileK));
    }
  }
  auto a_tile = [&](int it, const uint8_t** ptr, ptrdiff_t* stride) {
    *ptr = buf + ptrdiff_t{it} * kTileRows * k_pad;
    *stride = kTileK;
  };

  load_config();
  Block blk{};
  blk.k_tiles = k_tiles;
  blk.ldc = ldc;
  for (int jt = 0; jt < n_tiles; jt += 2) {
    const int nt = std::min(2, n_tiles - jt);
    for (int t = 0; t < nt; ++t) blk.b[t] = packed + ptrdiff_t{jt + t} * 16 * k_pad;
    blk.cols = std::min(32, n - jt * 16);
    for (int it = 0; it < m_tiles; it += 2) {
      const int mt = std::min(2, m_tiles - it);
      for (int t = 0; t < mt; ++t) a_tile(it + t, &blk.a[t], &blk.a_stride[t]);
      blk.rows = std::min(32, m - it * kTileRows);
      blk.c = c + ptrdiff_t{it} * kTileRows * ldc + jt * 16;
      if (mt == 2) {
        if (nt == 2) {
          block_kernel<2, 2>(blk);
        } else {
          block_kernel<2, 1>(blk);
        }
      } else if (nt == 2) {
        block_kernel<1, 2>(blk);
      } else {
        block_kernel<1, 1>(blk);
      }
    }
  }
  // Return the tile state to its init state: cheaper context switches.
  _tile_release();
}

}  // namespace vitint::kernels::detail
