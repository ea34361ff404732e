// AMX-INT8 GEMM: tdpbusd on 16 x 64-byte tiles (16 rows x 64 k-values of A,
// 16 k-groups x 16 columns x 4 k-values of B, 16 x 16 int32 of C). The dot
// products are exact (no saturation), so the result matches the reference.
//
// Packed B: per 16-column tile column, k zero-padded to a multiple of 64 and
// stored as (k / 4) rows of 64 bytes (row r = 16 columns x k-values 4r..4r+3),
// so each 64-k slice is one contiguous 1 KiB tile.
//
// Blocking: 2 x 2 C tiles (32 rows x 32 columns) stay in tile registers for
// a pass over k (all of it up to k = 768, passes of 8 k-tiles beyond, see
// k_passes), fed by 2 A and 2 B tiles. Within a chunk of 256 rows, column
// pairs are the outer loop so that a 32-column panel of B stays in L1 while
// the chunk's A (read in place or copied into zero-padded tiles, see ARows)
// streams from L2.
//
// AMX has no int16 multiply: the int16 x int8 GEMM (attn@v with Log-Int-
// Softmax weights) splits each int16 of A into a low byte (uint8) and a high
// byte (int8), a = lo + 256 hi, and runs tdpbusd on the low and tdpbssd on
// the high bytes against the same packed B (see drive_s16).
// GCC 12 flags the _mm512_undefined_epi32() inside many AVX-512 intrinsics as
// maybe-uninitialized once they are inlined (GCC PR 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

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

// Where one row tile of A is: k-tile kt at base + kt * kstep, its 16 rows
// `stride` bytes apart (a tile copy: kstep 1 KiB, stride 64; A in place:
// kstep 64, stride lda).
struct ATile {
  const uint8_t* base;
  ptrdiff_t stride, kstep;
};

// Computes one block of C into tiles 0-3 (MT x NT of them) over k-tiles
// [kt0, kt1): a[t] is row tile t of A, b[t] the packed B tile column t. The
// tiles start at zero, or at the partial sums of the earlier k-tiles in
// `partial` (a 32 x 32 block, rows 128 bytes apart).
template <int MT, int NT>
void compute_block(const ATile a[2], const int8_t* const b[2], int kt0, int kt1, const int32_t* partial) {
  if (partial) {
    _tile_loadd(0, partial, 128);
    if constexpr (NT > 1) _tile_loadd(1, partial + 16, 128);
    if constexpr (MT > 1) _tile_loadd(2, partial + 512, 128);
    if constexpr (MT > 1 && NT > 1) _tile_loadd(3, partial + 528, 128);
  } else {
    _tile_zero(0);
    if constexpr (NT > 1) _tile_zero(1);
    if constexpr (MT > 1) _tile_zero(2);
    if constexpr (MT > 1 && NT > 1) _tile_zero(3);
  }
  for (int kt = kt0; kt < kt1; ++kt) {
    _tile_loadd(4, a[0].base + kt * a[0].kstep, a[0].stride);
    _tile_loadd(6, b[0] + kt * kTileBytes, 64);
    if constexpr (NT > 1) _tile_loadd(7, b[1] + kt * kTileBytes, 64);
    _tile_dpbusd(0, 4, 6);
    if constexpr (NT > 1) _tile_dpbusd(1, 4, 7);
    if constexpr (MT > 1) {
      _tile_loadd(5, a[1].base + kt * a[1].kstep, a[1].stride);
      _tile_dpbusd(2, 5, 6);
      if constexpr (NT > 1) _tile_dpbusd(3, 5, 7);
    }
  }
}

// Stores the block's whole tiles at dst (row stride in bytes): 16 * MT rows
// x 16 * NT columns.
template <int MT, int NT>
void store_block(int32_t* dst, ptrdiff_t stride_bytes) {
  const ptrdiff_t down = kTileRows * stride_bytes / static_cast<ptrdiff_t>(sizeof(int32_t));
  _tile_stored(0, dst, stride_bytes);
  if constexpr (NT > 1) _tile_stored(1, dst + 16, stride_bytes);
  if constexpr (MT > 1) _tile_stored(2, dst + down, stride_bytes);
  if constexpr (MT > 1 && NT > 1) _tile_stored(3, dst + down + 16, stride_bytes);
}

// Where blocks go. Plain GEMM: into C (through a scratch block where only
// part of the tiles is valid).
struct StoreToC {
  int32_t* c;
  ptrdiff_t ldc;
  template <int MT, int NT>
  void put(int row, int col, int rows, int cols) {
    int32_t* dst = c + row * ldc + col;
    if (rows == MT * kTileRows && cols == NT * 16) {
      store_block<MT, NT>(dst, ldc * static_cast<ptrdiff_t>(sizeof(int32_t)));
      return;
    }
    alignas(64) int32_t tmp[2 * kTileRows * 32];
    store_block<MT, NT>(tmp, 32 * sizeof(int32_t));
    for (int r = 0; r < rows; ++r) {
      std::memcpy(dst + r * ldc, tmp + r * 32, static_cast<size_t>(cols) * sizeof(int32_t));
    }
  }
};

// Fused GEMM: each block goes to the epilogue through an L1-resident
// scratch block as soon as its tiles are done. (Deferring a block's
// epilogue, whole or in slices, under the next block's tile instructions
// gains nothing: the epilogues' shifts and vpmuldq compete with the tile
// products for port 0; docs/DEVNOTES.md.)
struct StoreToEpilogue {
  const GemmEpilogue* ep;
  int32_t* buf;
  template <int MT, int NT>
  void put(int row, int col, int rows, int cols) {
    store_block<MT, NT>(buf, 32 * sizeof(int32_t));
    ep->fn(ep->ctx, row, col, rows, cols, buf, 32);
  }
};

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

namespace {

// A copied into contiguous 16 x 64 tiles, [row tile][k tile][16][64],
// zero-padded to whole tiles: for A whose rows are not whole aligned tile
// rows (k not a multiple of 64, unaligned rows, partial row tiles), or are
// far apart, and no tile read leaves A.
const uint8_t* copy_a(int m, int k, const uint8_t* a, int lda, int m_tiles, int k_pad) {
  const int k_tiles = k_pad / kTileK;
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
  return buf;
}

// The row tiles of A for one chunk of rows. Where A and lda are 64-byte
// aligned (so a row's tile reads, k rounded up to 64, stay inside its
// stride), the tiles are read in place and only the rest is copied
// (zero-padded): a partial last row tile, and where k is not a multiple of
// 64 the tile holding A's last row (whose stride padding need not exist).
// Bytes read past k multiply the zero rows that pad the packed B, so they
// add nothing. Otherwise A goes through copy_a. Fused GEMMs with a no-op
// epilogue, 197 rows: DeiT-T qkv 12.3 -> 10.8 us, fc2 (k = 768) 19.4 -> 15.7
// us, DeiT-S proj 17.6 -> 14.6 us; attn@v (k = 197, lda = 256) 3.7 -> 2.1
// us. The multi-pass GEMMs (k > 768) too: DeiT-S fc2 (k = 1536) 84-87 ->
// 72-76 us alone, DeiT-S 8.0-8.4 -> 7.8-8.2 ms in the model.
class ARows {
 public:
  ARows(int m, int k, const uint8_t* a, int lda, int m_tiles, int k_pad)
      : a_(a), lda_(lda), k_pad_(k_pad),
        full_(lda % 64 == 0 && reinterpret_cast<uintptr_t>(a) % 64 == 0
                  ? (k == k_pad ? m : m - 1) / kTileRows
                  : 0) {
    if (full_ < m_tiles) {
      buf_ = copy_a(m - full_ * kTileRows, k, a + ptrdiff_t{full_} * kTileRows * lda, lda, m_tiles - full_, k_pad);
    }
  }
  ATile tile(int it) const {
    if (it < full_) return {a_ + ptrdiff_t{it} * kTileRows * lda_, lda_, kTileK};
    return {buf_ + ptrdiff_t{it - full_} * kTileRows * k_pad_, kTileK, kTileBytes};
  }

 private:
  const uint8_t* a_;
  ptrdiff_t lda_;
  int k_pad_;
  int full_;  // row tiles read in place
  const uint8_t* buf_ = nullptr;
};

// One block over one pass of k-tiles: its tiles go to the sink after the
// last pass, to the block's partial sums before.
template <int MT, int NT, class Sink>
void block_pass(const ATile a[2], const int8_t* const b[2], int kt0, int kt1, int k_tiles,
                int32_t* partial, int row, int col, int rows, int cols, Sink& sink) {
  compute_block<MT, NT>(a, b, kt0, kt1, kt0 > 0 ? partial : nullptr);
  if (kt1 == k_tiles) {
    sink.template put<MT, NT>(row, col, rows, cols);
  } else {
    store_block<MT, NT>(partial, 32 * sizeof(int32_t));
  }
}

// Partial sums of a column pair's blocks between k passes: [row pair][32][32].
int32_t* partial_buffer(int row_pairs) {
  thread_local std::vector<int32_t> buf;
  const size_t want = static_cast<size_t>(row_pairs) * 32 * 32 + 16;
  if (buf.size() < want) buf.resize(want);
  const auto addr = reinterpret_cast<uintptr_t>(buf.data());
  return buf.data() + (64 - addr % 64) % 64 / sizeof(int32_t);
}

// k-tiles per pass over a column pair: the pair's B tiles of one pass
// (2 KiB per k-tile) stay in L1 while the row blocks stream A past them.
// Up to 12 k-tiles (k = 768) one pass does; beyond, the blocks would read
// both operands from L2 (fc2 of DeiT-S, k = 1536, ran at 60% of the speed of
// the k = 384 layers), and k is cut into equal passes of at most 8 k-tiles,
// the blocks' partial sums kept in between (measured: fc2 of DeiT-S 12%,
// of DeiT-B 10% faster; passes of 12 gained less, k = 768 in two passes lost).
int k_passes(int k_tiles) { return k_tiles <= 12 ? 1 : (k_tiles + 7) / 8; }

// Rows per pass of the whole GEMM: A's tile copy (rows x k bytes) and the
// partial sums stay bounded (and in L2) whatever the batch; a batch-1 ViT
// GEMM (197 rows or fewer per thread) is one pass.
constexpr int kRowChunk = 256;

template <class Sink>
void drive(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b, Sink& sink) {
  const int k_pad = round_up(k, kTileK);
  const int k_tiles = k_pad / kTileK;
  const int n_tiles = round_up(n, 16) / 16;
  const auto* packed = static_cast<const int8_t*>(packed_b);
  const int passes = k_passes(k_tiles);
  const int pass_tiles = (k_tiles + passes - 1) / passes;
  int32_t* const partials = passes > 1 ? partial_buffer(kRowChunk / 32) : nullptr;

  load_config();
  for (int r0 = 0; r0 < m; r0 += kRowChunk) {
    const int m_c = std::min(kRowChunk, m - r0);
    const int m_tiles = (m_c + kTileRows - 1) / kTileRows;
    const ARows rows_a(m_c, k, a + ptrdiff_t{r0} * lda, lda, m_tiles, k_pad);
    for (int jt = 0; jt < n_tiles; jt += 2) {
      const int nt = std::min(2, n_tiles - jt);
      const int8_t* b[2] = {packed + ptrdiff_t{jt} * 16 * k_pad, packed + ptrdiff_t{jt + nt - 1} * 16 * k_pad};
      const int col = jt * 16;
      const int cols = std::min(32, n - col);
      for (int kt0 = 0; kt0 < k_tiles; kt0 += pass_tiles) {
        const int kt1 = std::min(k_tiles, kt0 + pass_tiles);
        for (int it = 0; it < m_tiles; it += 2) {
          const int mt = std::min(2, m_tiles - it);
          const ATile at[2] = {rows_a.tile(it), rows_a.tile(it + mt - 1)};
          const int row = r0 + it * kTileRows;
          const int rows = std::min(32, m - row);
          int32_t* partial = partials ? partials + ptrdiff_t{it / 2} * 32 * 32 : nullptr;
          if (mt == 2) {
            if (nt == 2) {
              block_pass<2, 2>(at, b, kt0, kt1, k_tiles, partial, row, col, rows, cols, sink);
            } else {
              block_pass<2, 1>(at, b, kt0, kt1, k_tiles, partial, row, col, rows, cols, sink);
            }
          } else if (nt == 2) {
            block_pass<1, 2>(at, b, kt0, kt1, k_tiles, partial, row, col, rows, cols, sink);
          } else {
            block_pass<1, 1>(at, b, kt0, kt1, k_tiles, partial, row, col, rows, cols, sink);
          }
        }
      }
    }
  }
  // Return the tile state to its init state: cheaper context switches.
  _tile_release();
}

// The int16 GEMM. A's rows split into two tile copies like copy_a's:
// lo = a & 255 (uint8) and hi = a >> 8 (int8), zero-padded. lo and hi point
// at m_tiles * 16 * k_pad bytes each, 64-byte aligned (half is a multiple of 64).
void copy_a_split(int m, int k, const int16_t* a, int lda, int m_tiles, int k_pad, uint8_t* lo, uint8_t* hi) {
  const int k_tiles = k_pad / kTileK;
  for (int i = 0; i < m_tiles * kTileRows; ++i) {
    const ptrdiff_t at = ptrdiff_t{i / kTileRows} * kTileRows * k_pad + (i % kTileRows) * kTileK;
    for (int kt = 0; kt < k_tiles; ++kt) {
      uint8_t* const l = lo + at + kt * kTileBytes;
      uint8_t* const h = hi + at + kt * kTileBytes;
      if (i >= m) {
        _mm512_store_si512(l, _mm512_setzero_si512());
        _mm512_store_si512(h, _mm512_setzero_si512());
        continue;
      }
      const int16_t* src = a + ptrdiff_t{i} * lda + kt * kTileK;
      const int left = k - kt * kTileK;  // int16 values of this row in this k-tile (> 0)
      const auto mask0 = static_cast<__mmask32>(left >= 32 ? ~0u : (1u << left) - 1);
      const auto mask1 = static_cast<__mmask32>(left >= 64 ? ~0u : (left <= 32 ? 0u : (1u << (left - 32)) - 1));
      // Zeros past k (masked loads) become zero bytes.
      const __m512i x0 = _mm512_maskz_loadu_epi16(mask0, src);
      const __m512i x1 = _mm512_maskz_loadu_epi16(mask1, src + 32);
      auto store32 = [](uint8_t* dst, __m256i v) { _mm256_store_si256(reinterpret_cast<__m256i*>(dst), v); };
      store32(l, _mm512_cvtepi16_epi8(x0));
      store32(l + 32, _mm512_cvtepi16_epi8(x1));
      store32(h, _mm512_cvtepi16_epi8(_mm512_srai_epi16(x0, 8)));
      store32(h + 32, _mm512_cvtepi16_epi8(_mm512_srai_epi16(x1, 8)));
    }
  }
}

// One 16-row block of the int16 GEMM over all of k: tiles 0-1 the low-byte
// sums of NT column tiles, 2-3 the high-byte sums; 4 / 5 A's low / high
// bytes, 6-7 B. Then C = lo + (hi << 8) (exact: a.b = lo.b + 256 hi.b, and
// int32 wraps alike on both sides).
template <int NT>
void block_s16(const uint8_t* lo, const uint8_t* hi, const int8_t* const b[2], int k_tiles, int32_t* c,
               ptrdiff_t ldc, int rows, int cols) {
  _tile_zero(0);
  _tile_zero(2);
  if constexpr (NT > 1) {
    _tile_zero(1);
    _tile_zero(3);
  }
  for (int kt = 0; kt < k_tiles; ++kt) {
    _tile_loadd(4, lo + kt * kTileBytes, kTileK);
    _tile_loadd(5, hi + kt * kTileBytes, kTileK);
    _tile_loadd(6, b[0] + kt * kTileBytes, 64);
    _tile_dpbusd(0, 4, 6);
    _tile_dpbssd(2, 5, 6);
    if constexpr (NT > 1) {
      _tile_loadd(7, b[1] + kt * kTileBytes, 64);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbssd(3, 5, 7);
    }
  }
  alignas(64) int32_t sum_lo[kTileRows * 32];
  alignas(64) int32_t sum_hi[kTileRows * 32];
  _tile_stored(0, sum_lo, 32 * sizeof(int32_t));
  _tile_stored(2, sum_hi, 32 * sizeof(int32_t));
  if constexpr (NT > 1) {
    _tile_stored(1, sum_lo + 16, 32 * sizeof(int32_t));
    _tile_stored(3, sum_hi + 16, 32 * sizeof(int32_t));
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; j += 16) {
      const auto mask = static_cast<__mmask16>(cols - j >= 16 ? 0xFFFF : (1u << (cols - j)) - 1);
      const __m512i v = _mm512_add_epi32(_mm512_load_si512(sum_lo + r * 32 + j),
                                         _mm512_slli_epi32(_mm512_load_si512(sum_hi + r * 32 + j), 8));
      _mm512_mask_storeu_epi32(c + r * ldc + j, mask, v);
    }
  }
}

void drive_s16(int m, int n, int k, const int16_t* a, int lda, const void* packed_b, int32_t* c, int ldc) {
  const int k_pad = round_up(k, kTileK);
  const int k_tiles = k_pad / kTileK;
  const int n_tiles = round_up(n, 16) / 16;
  const auto* packed = static_cast<const int8_t*>(packed_b);
  const int chunk_tiles = (std::min(m, kRowChunk) + kTileRows - 1) / kTileRows;
  const size_t half = static_cast<size_t>(chunk_tiles) * kTileRows * static_cast<size_t>(k_pad);
  uint8_t* const lo = a_buffer(2 * half);  // A's two copies
  uint8_t* const hi = lo + half;
  load_config();
  for (int r0 = 0; r0 < m; r0 += kRowChunk) {
    const int m_c = std::min(kRowChunk, m - r0);
    const int m_tiles = (m_c + kTileRows - 1) / kTileRows;
    copy_a_split(m_c, k, a + ptrdiff_t{r0} * lda, lda, m_tiles, k_pad, lo, hi);
    for (int jt = 0; jt < n_tiles; jt += 2) {
      const int nt = std::min(2, n_tiles - jt);
      const int8_t* b[2] = {packed + ptrdiff_t{jt} * 16 * k_pad, packed + ptrdiff_t{jt + nt - 1} * 16 * k_pad};
      const int col = jt * 16;
      const int cols = std::min(32, n - col);
      for (int it = 0; it < m_tiles; ++it) {
        const ptrdiff_t off = ptrdiff_t{it} * kTileRows * k_pad;
        const int row = r0 + it * kTileRows;
        int32_t* dst = c + ptrdiff_t{row} * ldc + col;
        const int rows = std::min(kTileRows, m - row);
        if (nt == 2) {
          block_s16<2>(lo + off, hi + off, b, k_tiles, dst, ldc, rows, cols);
        } else {
          block_s16<1>(lo + off, hi + off, b, k_tiles, dst, ldc, rows, cols);
        }
      }
    }
  }
  _tile_release();
}

}  // namespace

void amx_gemm_u8s8s32(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                      int32_t* c, int ldc) {
  StoreToC sink{c, ldc};
  drive(m, n, k, a, lda, packed_b, sink);
}

void amx_gemm_u8s8s32_fused(int m, int n, int k, const uint8_t* a, int lda, const void* packed_b,
                            const GemmEpilogue& epilogue) {
  alignas(64) int32_t block[2 * kTileRows * 32];
  StoreToEpilogue sink{&epilogue, block};
  drive(m, n, k, a, lda, packed_b, sink);
}

void amx_gemm_s16s8s32(int m, int n, int k, const int16_t* a, int lda, const void* packed_b,
                       int32_t* c, int ldc) {
  drive_s16(m, n, k, a, lda, packed_b, c, ldc);
}

}  // namespace vitint::kernels::detail
