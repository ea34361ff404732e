// Kernel throughput per path (ref, avx2, avxvnni, avx512vnni, amx), batch 1, 197
// tokens: the integer GEMMs on the ViT shapes (B packed once outside the
// timed loop, as the engine does with weights; "ops" counts 2*M*N*K integer
// operations) and the elementwise kernels on DeiT-S shapes ("elements" per
// second).
//   build/bench/vitint_bench_kernels --benchmark_filter=amx/small
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "vitint/kernels/gemm.h"
#include "vitint/kernels/quant.h"
#include "vitint/kernels/quant_dispatch.h"

namespace vk = vitint::kernels;

namespace {

struct Shape {
  const char* name;
  int m, n, k;
  bool s16;  // int16 A (Log-Int-Softmax attention probabilities @ V)
  int lda = 0, ldc = 0;  // row strides of A and C in elements; 0: k and n
};

constexpr int kTokens = 197;
// The engine's attention strides (engine/src/ops.cpp): q.k^T writes its score
// rows 208 int32 apart (keys padded to 16), attn@v reads its A, the attention
// weights, in rows 256 elements apart (197 rounded up to 64).
constexpr int kScoreLd = (kTokens + 15) / 16 * 16;
constexpr int kWeightsLd = (kTokens + 63) / 64 * 64;
// The linear layers' shapes run with lda = k and ldc = n; the attention shapes
// use the engine's strides above (B of q.k^T is still packed for 197 keys).
const Shape kShapes[] = {
    {"tiny_qkv", kTokens, 576, 192, false},     {"tiny_proj", kTokens, 192, 192, false},
    {"tiny_fc1", kTokens, 768, 192, false},     {"tiny_fc2", kTokens, 192, 768, false},
    {"small_qkv", kTokens, 1152, 384, false},   {"small_proj", kTokens, 384, 384, false},
    {"small_fc1", kTokens, 1536, 384, false},   {"small_fc2", kTokens, 384, 1536, false},
    {"base_qkv", kTokens, 2304, 768, false},    {"base_proj", kTokens, 768, 768, false},
    {"base_fc1", kTokens, 3072, 768, false},    {"base_fc2", kTokens, 768, 3072, false},
    {"attn_qk", kTokens, kTokens, 64, false, 0, kScoreLd},
    {"attn_v_s16", kTokens, 64, kTokens, true, kWeightsLd},
    {"attn_v_u8", kTokens, 64, kTokens, false, kWeightsLd},
};

// n values of T starting on a 64-byte boundary, as the engine's activation
// and weight buffers do (the AMX GEMM reads 64-byte-aligned A rows in place).
template <class T>
struct Aligned {
  std::vector<T> raw;
  T* data;
  explicit Aligned(size_t n) : raw(n + 64 / sizeof(T)) {
    const auto addr = reinterpret_cast<uintptr_t>(raw.data());
    data = raw.data() + (64 - addr % 64) % 64 / sizeof(T);
  }
};

void run_gemm(benchmark::State& state, vk::Isa isa, Shape s) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> u8(0, 255);
  std::uniform_int_distribution<int> s8(-128, 127);
  std::uniform_int_distribution<int> s16(0, 32767);
  std::vector<int8_t> b(static_cast<size_t>(s.n) * s.k);
  for (auto& x : b) x = static_cast<int8_t>(s8(rng));
  const int lda = s.lda ? s.lda : s.k;
  const int ldc = s.ldc ? s.ldc : s.n;
  Aligned<int32_t> c(static_cast<size_t>(s.m) * ldc);  // m rows of ldc
  // B packed once, then the timed GEMM calls.
  auto timed = [&](size_t packed_bytes, auto pack, auto gemm) {
    Aligned<uint8_t> packed(packed_bytes);
    pack(packed.data);
    for (auto _ : state) {
      gemm(packed.data);
      benchmark::DoNotOptimize(c.data);
      benchmark::ClobberMemory();
    }
  };
  if (s.s16) {
    // attn@V packs V ([tokens][head_dim]) from its transposed layout.
    // m rows of lda: the first k elements of each row random, the rest zero.
    Aligned<int16_t> a(static_cast<size_t>(s.m) * lda);
    for (int i = 0; i < s.m; ++i) {
      for (int p = 0; p < s.k; ++p) a.data[static_cast<size_t>(i) * lda + p] = static_cast<int16_t>(s16(rng));
    }
    timed(
        vk::packed_b16_bytes(isa, s.n, s.k),
        [&](void* p) { vk::pack_b16_s8_transposed(isa, s.n, s.k, b.data(), s.n, p); },
        [&](const void* p) { vk::gemm_s16s8s32(isa, s.m, s.n, s.k, a.data, lda, p, c.data, ldc); });
  } else {
    Aligned<uint8_t> a(static_cast<size_t>(s.m) * lda);
    for (int i = 0; i < s.m; ++i) {
      for (int p = 0; p < s.k; ++p) a.data[static_cast<size_t>(i) * lda + p] = static_cast<uint8_t>(u8(rng));
    }
    timed(
        vk::packed_b_bytes(isa, s.n, s.k), [&](void* p) { vk::pack_b_s8(isa, s.n, s.k, b.data(), s.k, p); },
        [&](const void* p) { vk::gemm_u8s8s32(isa, s.m, s.n, s.k, a.data, lda, p, c.data, ldc); });
  }
  const double ops = 2.0 * s.m * s.n * s.k;
  state.counters["ops"] = benchmark::Counter(ops * static_cast<double>(state.iterations()),
                                             benchmark::Counter::kIsRate);
}

// Packing cost of the per-image operands (K and V of every head).
void run_pack(benchmark::State& state, vk::Isa isa, Shape s) {
  std::vector<int8_t> b(static_cast<size_t>(s.n) * s.k, 3);
  std::vector<uint8_t> packed(s.s16 ? vk::packed_b16_bytes(isa, s.n, s.k)
                                    : vk::packed_b_bytes(isa, s.n, s.k));
  for (auto _ : state) {
    if (s.s16) {
      vk::pack_b16_s8_transposed(isa, s.n, s.k, b.data(), s.n, packed.data());
    } else {
      vk::pack_b_s8(isa, s.n, s.k, b.data(), s.k, packed.data());
    }
    benchmark::DoNotOptimize(packed.data());
    benchmark::ClobberMemory();
  }
}

// Elementwise kernels on the DeiT-S shapes of one block (197 tokens):
// qkv requantization, GELU of fc1, residual add of fc2, LayerNorm, softmax
// of one head, the zero-point removal and row normalization of one head's
// 4-bit attention output (in place: the values drift, the work does not),
// one head's K and V to int8 out of DeiT-S's qkv rows. Realistic parameters (multipliers of 2^30 with shifts that
// give 8-bit outputs, accumulators of a few thousand) keep every path off
// its slow corner cases, as in a model. Counter: elements per second.
constexpr int kRows = 197;

struct Elementwise {
  std::vector<int32_t> acc, bias, mult, shift, out_mult, out_shift, gamma;
  std::vector<int64_t> beta;
  std::vector<uint8_t> zp, alpha, out8;
  std::vector<int16_t> stream, weights;
  vk::GeluSpline spline{};
  vk::GeluChannels gelu;
  vk::RequantChannels requant;
  explicit Elementwise(int cols) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> acc_d(-4000, 4000);
    acc.resize(static_cast<size_t>(kRows) * cols);
    for (auto& x : acc) x = acc_d(rng);
    bias.assign(static_cast<size_t>(cols), 100);
    mult.assign(static_cast<size_t>(cols), 1 << 30);
    shift.assign(static_cast<size_t>(cols), 36);
    out_mult.assign(static_cast<size_t>(cols), 1 << 30);
    out_shift.assign(static_cast<size_t>(cols), 34);
    zp.assign(static_cast<size_t>(cols), 20);
    alpha.assign(static_cast<size_t>(cols), 0);
    gamma.assign(static_cast<size_t>(cols), 1 << 20);
    beta.assign(static_cast<size_t>(cols), int64_t{1} << 40);
    out8.resize(acc.size());
    stream.resize(acc.size());
    for (auto& x : stream) x = static_cast<int16_t>(acc_d(rng));
    weights.resize(acc.size());
    vk::gelu_spline(vk::gelu_table().data(), &spline);
    gelu = vk::gelu_channels(cols, bias.data(), mult.data(), shift.data(), out_mult.data(), out_shift.data(), zp.data());
    requant = vk::requant_channels(cols, bias.data(), mult.data(), shift.data());
  }
};

enum class Kernel { kRequant, kGelu, kResidual, kLayerNorm, kSoftmaxU8, kSoftmaxLis, kAttnLisRescale, kAttnKvS8 };

void run_elementwise(benchmark::State& state, vk::Isa isa, Kernel kernel, int cols) {
  Elementwise e(cols);
  const vk::RequantU8Params rq = e.requant.params(e.zp.data());
  const vk::GeluU8Params gp = e.gelu.params(e.zp.data(), &e.spline);
  const vk::ResidualParams rp{e.bias.data(), 0, e.mult.data(), e.shift.data(), e.out_mult.data(), e.out_shift.data(),
                              0, 0, -32768, 32767};
  vk::LayerNormParams lp{cols, {0, -32768, 32767, e.alpha.data()}, 1000, e.gamma.data(), e.beta.data(), 0, nullptr};
  const vk::LayerNormPrepared prepared = vk::layernorm_prepare(lp);
  lp.prepared = &prepared;
  std::vector<int32_t> colsum(static_cast<size_t>(cols), 0), rowsum(kRows, 3 << 14);
  const vk::SoftmaxExp se = vk::softmax_exp(1 << 30, 32);  // a logit unit of ln2 / 1024
  const vk::SoftmaxParams sp{kRows, cols, colsum.data(), 0, se.mult, se.shift};
  constexpr int kQkvLd = 3 * 384;  // DeiT-S: K at column 384, V at 768
  std::vector<uint8_t> qkv(static_cast<size_t>(kRows) * kQkvLd, 77);
  std::vector<int8_t> k_s8(static_cast<size_t>(kRows) * cols), v_s8(k_s8.size());
  std::vector<int32_t> colsum_k(kRows);
  for (auto _ : state) {
    switch (kernel) {
      case Kernel::kRequant:
        vk::requant_u8(isa, kRows, cols, e.acc.data(), cols, rq, e.out8.data(), cols);
        break;
      case Kernel::kGelu:
        vk::gelu_u8(isa, kRows, cols, e.acc.data(), cols, gp, e.out8.data(), cols);
        break;
      case Kernel::kResidual:
        vk::residual_add(isa, kRows, cols, e.acc.data(), cols, rp, e.stream.data(), cols);
        break;
      case Kernel::kLayerNorm:
        vk::layernorm(isa, kRows, e.stream.data(), cols, lp, e.out8.data(), cols);
        break;
      case Kernel::kSoftmaxU8:
        vk::softmax_u8(isa, e.acc.data(), cols, sp, e.out8.data(), cols, rowsum.data());
        break;
      case Kernel::kSoftmaxLis:
        vk::softmax_lis(isa, e.acc.data(), cols, sp, e.weights.data(), cols, rowsum.data());
        break;
      case Kernel::kAttnLisRescale:
        vk::attn_lis_rescale(isa, kRows, cols, e.acc.data(), cols, 5, rowsum.data());
        break;
      case Kernel::kAttnKvS8:
        vk::attn_kv_s8(isa, kRows, cols, qkv.data() + 384, qkv.data() + 768, kQkvLd, k_s8.data(), v_s8.data(),
                       colsum_k.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["elements"] = benchmark::Counter(static_cast<double>(state.iterations()) * kRows * cols,
                                                  benchmark::Counter::kIsRate);
}

const bool kRegistered = [] {
  for (vk::Isa isa : vk::kAllIsas) {
    if (!vk::isa_supported(isa)) continue;
    for (const Shape& s : kShapes) {
      const std::string name = std::string(s.s16 ? "gemm_s16s8s32/" : "gemm_u8s8s32/") +
                               vk::isa_name(isa) + "/" + s.name + "/" + std::to_string(s.m) + "x" +
                               std::to_string(s.n) + "x" + std::to_string(s.k);
      benchmark::RegisterBenchmark(name.c_str(), run_gemm, isa, s)->Unit(benchmark::kMicrosecond);
    }
    const struct {
      const char* kernel_name;
      const char* shape;
      Kernel kernel;
      int cols;
    } elementwise[] = {{"requant_u8", "small_qkv", Kernel::kRequant, 1152},  {"gelu_u8", "small_fc1", Kernel::kGelu, 1536},
                       {"residual_add", "small_fc2", Kernel::kResidual, 384}, {"layernorm", "small", Kernel::kLayerNorm, 384},
                       {"layernorm", "tiny", Kernel::kLayerNorm, 192},        {"softmax_u8", "head", Kernel::kSoftmaxU8, 197},
                       {"softmax_lis", "head", Kernel::kSoftmaxLis, 197},     {"attn_lis_rescale", "head", Kernel::kAttnLisRescale, 64},
                       {"attn_kv_s8", "head", Kernel::kAttnKvS8, 64}};
    for (const auto& k : elementwise) {
      const std::string name = std::string(k.kernel_name) + "/" + vk::isa_name(isa) + "/" + k.shape + "/" +
                               std::to_string(kRows) + "x" + std::to_string(k.cols);
      benchmark::RegisterBenchmark(name.c_str(), run_elementwise, isa, k.kernel, k.cols)->Unit(benchmark::kMicrosecond);
    }
    for (const Shape& s : kShapes) {
      if (std::string(s.name) != "attn_qk" && std::string(s.name) != "attn_v_s16") continue;
      const std::string name = std::string("pack/") + vk::isa_name(isa) + "/" + s.name;
      benchmark::RegisterBenchmark(name.c_str(), run_pack, isa, s)->Unit(benchmark::kMicrosecond);
    }
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
