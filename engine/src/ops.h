// Operators of the integer graph. Each op is prepared once at model load
// (packed weights, per-channel parameters as views into the mapped file) and
// its run() allocates nothing: all activations live in a per-session arena.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/src/thread_pool.h"
#include "vitint/kernels/cpu.h"
#include "vitint/kernels/gemm.h"
#include "vitint/kernels/quant.h"

namespace vitint::engine {

// 64-byte aligned heap block (packed weights, arenas).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer();
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// A buffer of the arena: bytes = per_image * batch + fixed + per_thread *
// threads (per-thread scratch: copy t starts at t * per_thread).
struct BufferDecl {
  std::string name;
  size_t per_image = 0;
  size_t fixed = 0;
  size_t per_thread = 0;
};

inline size_t align64(size_t bytes) { return (bytes + 63) / 64 * 64; }

struct ExecContext {
  int batch = 1;
  kernels::Isa isa = kernels::Isa::kRef;
  const uint8_t* images = nullptr;  // batch x H x W x 3
  float* logits = nullptr;          // batch x classes
  std::vector<uint8_t*> buffers;    // resolved arena pointers, by buffer id
  ThreadPool* pool = nullptr;       // the session's (one thread: no workers, tasks run inline)
  template <class T>
  T* buf(int id) const { return reinterpret_cast<T*>(buffers[static_cast<size_t>(id)]); }
  int threads() const { return pool->threads(); }
  // fn(task, thread) for task in [0, tasks), spread over the session's threads.
  template <class F>
  void parallel(int tasks, F&& fn) const {
    pool->run(tasks, fn);
  }
};

class Op {
 public:
  virtual ~Op() = default;
  virtual void run(ExecContext& ctx) const = 0;
  std::string name;  // e.g. "blocks.3.fc1" (Session::profile)
  std::string kind;  // e.g. "linear + GELU"
};

// int8 weights [n][k] packed for one kernel path, with the epilogue's
// per-channel parameters (views into the model file).
struct PackedLinear {
  int n = 0;
  int k = 0;
  AlignedBuffer packed;
  const int32_t* bias = nullptr;
  const int32_t* mult = nullptr;
  const int32_t* shift = nullptr;
  void pack(kernels::Isa isa, const int8_t* weight, int n_out, int k_in);
  void gemm(kernels::Isa isa, int m, const uint8_t* a, int lda, int32_t* acc) const;
  // Columns [col_begin, col_end) only, through a fused epilogue (block
  // columns relative to col_begin); col_begin on a column panel boundary of
  // the path (ops.cpp).
  void gemm_cols_fused(kernels::Isa isa, int m, int col_begin, int col_end, const uint8_t* a, int lda,
                       const kernels::GemmEpilogue& epilogue) const;
};

// Patch embedding: im2col of uint8 pixels, GEMM with the (normalization-
// folded) conv weights, requantization into the residual stream with the
// position embedding folded into a per-token bias; row 0 is the class token.
struct PatchEmbedOp final : Op {
  int image_size = 0, patch = 0, tokens = 0;
  // [dim = linear.n][3 * patch * patch], k in (row, column, channel) order of
  // the patch's pixels: im2col copies whole rows of interleaved RGB pixels.
  PackedLinear linear;
  int prefix = 1;                     // class, distillation and register token rows before the patches
  const int32_t* pos_bias = nullptr;  // [tokens - prefix][dim]
  std::vector<const int16_t*> prefix_rows;  // [prefix], each [dim]
  int32_t zp_out = 0, qmin = 0, qmax = 0;
  int im2col = -1, stream = -1;
  // Packs conv weights in timm's [dim][channel][row][column] order into
  // `linear` (patch set first).
  void pack_weights(kernels::Isa isa, const int8_t* weight, int dim);
  void run(ExecContext& ctx) const override;
  static void epilogue(const PatchEmbedOp& op, const ExecContext& ctx, int row, int col, int rows, int cols,
                       const int32_t* c, int ldc);
};

// LayerNorm of the first `rows_per_image` rows of each image's `tokens` (all
// tokens, or the class and distillation token, or the pooled row), written
// densely: to uint8 (kernels::layernorm), or with to_stream onto another
// int16 stream in [qmin, qmax] (kernels::layernorm_stream: a pre-norm ViT's
// norm_pre).
struct LayerNormOp final : Op {
  int tokens = 0, rows_per_image = 0;  // width: params.channels
  int first_row = 0;                   // of each image's tokens (the patch tokens: the prefix)
  kernels::LayerNormParams params{};     // params.prepared unused: run() points it at `prepared`
  kernels::LayerNormPrepared prepared;  // layernorm_prepare(params)
  bool to_stream = false;
  int32_t qmin = 0, qmax = 0;  // to_stream: the output stream's range
  int in = -1, out = -1;
  void run(ExecContext& ctx) const override;
};

// Linear layer with a requantizing epilogue: to uint8 (plain, or through
// the GELU of kernels::gelu_u8) or a residual add into the stream.
struct LinearOp final : Op {
  int rows_per_image = 0;
  int out_ld = 0;  // elements between output rows (n, or a stream's tokens * n for class-token rows)
  PackedLinear linear;
  // uint8 epilogue: kernels::requant_u8 of `requant`, or the GELU below
  const uint8_t* zero_point = nullptr;  // [n]
  kernels::RequantChannels requant;     // of linear.bias / mult / shift
  // GELU epilogue (when gelu_spline != nullptr): kernels::gelu_u8
  std::shared_ptr<const kernels::GeluSpline> gelu_spline;  // of the model's table, shared by the blocks
  kernels::GeluChannels gelu;  // of linear.bias / mult / shift, the file's GELU dyadics and zero_point
  // residual epilogue (when skip_mult != nullptr)
  const int32_t* skip_mult = nullptr;
  const int32_t* skip_shift = nullptr;
  int32_t zp_in = 0, zp_out = 0, qmin = 0, qmax = 0;
  // residual_add16's numbers where they exist, else the exact residual_add runs
  std::optional<kernels::ResidualChannels> residual16;
  int in = -1, out = -1;
  // The exact residual add's parameters for the columns from j on.
  kernels::ResidualParams residual_params(int j) const;
  void run(ExecContext& ctx) const override;
  static void epilogue(const LinearOp& op, const ExecContext& ctx, int row, int col, int rows, int cols,
                       const int32_t* c, int ldc);
};

// Multi-head self-attention core: q.k^T, integer softmax (8-bit uniform or
// 4-bit Log-Int-Softmax), attn @ v, requantization of the context. Work is
// split by (image, head, block of query rows); each thread carves its own
// copy of the scratch buffer (declared per thread, scratch_bytes each).
struct AttentionOp final : Op {
  int tokens = 0, dim = 0, heads = 0, attention_bits = 8;
  // Queries of the first query_rows tokens only (all, or the class token),
  // output [batch][query_rows][dim].
  int query_rows = 0;
  bool lis_normalize = false;  // rescale each row of 4-bit attention to a unit sum
  // q's uint8 zero point and v's int8 zero point (k's cancels in the softmax).
  int32_t zq = 0, zv = 0;
  int32_t exp_mult = 0, exp_shift = 0;  // kernels::softmax_exp() of the logit scale
  // Context requantization per model channel (head h owns h*hd .. h*hd+hd-1).
  kernels::RequantChannels out_requant;  // of the file's dyadics, no bias
  const uint8_t* out_zp = nullptr;
  int qkv = -1, out = -1, scratch = -1;
  static size_t scratch_bytes(kernels::Isa isa, int tokens, int head_dim);
  void run(ExecContext& ctx) const override;
};

// Average pooling: per image, the sum S of the stream codes of rows
// prefix..tokens-1 (the n patch tokens), per channel. Written as their mean
// rounded half up, int16 floor((2 S + n) / 2n) (a mean of codes of one grid
// is a code of that grid, so no clamp) through the int32 [dim] scratch
// buffer `sums`, or with `sum_out` as the int32 S itself.
struct PoolOp final : Op {
  int tokens = 0, prefix = 0, dim = 0;
  bool sum_out = false;
  int in = -1, out = -1, sums = -1;
  void run(ExecContext& ctx) const override;
};

// Requantization of `rows_per_image` int32 rows of `dim` per image to
// uint8 (kernels::requant_u8).
struct RequantOp final : Op {
  int rows_per_image = 0, dim = 0;
  kernels::RequantChannels channels;
  const uint8_t* zero_point = nullptr;  // [dim]
  int in = -1, out = -1;
  void run(ExecContext& ctx) const override;
};

// Classifier: int8 GEMM on the class token's final-norm row (rows `in_ld`
// apart per image), float logits = (acc + bias) * scale; a distilled DeiT
// averages that with its second head on the next row, as timm does in eval
// mode.
struct HeadOp final : Op {
  PackedLinear linear;
  const float* scale = nullptr;  // [classes]
  PackedLinear dist;             // n = 0: no distillation head
  const float* dist_scale = nullptr;
  int in = -1, in_ld = 0, acc = -1;  // acc: [2][classes] per image
  void run(ExecContext& ctx) const override;
};

struct Graph {
  std::vector<BufferDecl> buffers;
  std::vector<std::unique_ptr<Op>> ops;
  int add_buffer(std::string name, size_t per_image, size_t fixed = 0, size_t per_thread = 0) {
    buffers.push_back({std::move(name), per_image, fixed, per_thread});
    return static_cast<int>(buffers.size()) - 1;
  }
};

}  // namespace vitint::engine
