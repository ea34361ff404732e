// Integer GEMM throughput per kernel path on the ViT shapes (batch 1, 197
// tokens). B is packed once outside the timed loop, as the engine does with
// weights. "ops" counts 2*M*N*K integer operations (multiply + add).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "vitint/kernels/gemm.h"

namespace vk = vitint::kernels;

namespace {

struct Shape {
  const char* name;
  int m, n, k;
  bool s16;  // int16 A (Log-Int-Softmax attention probabilities @ V)
};

constexpr int kTokens = 197;
const Shape kShapes[] = {
    {"tiny_qkv", kTokens, 576, 192, false},     {"tiny_proj", kTokens, 192, 192, false},
    {"tiny_fc1", kTokens, 768, 192, false},     {"tiny_fc2", kTokens, 192, 768, false},
    {"small_qkv", kTokens, 1152, 384, false},   {"small_proj", kTokens, 384, 384, false},
    {"small_fc1", kTokens, 1536, 384, false},   {"small_fc2", kTokens, 384, 1536, false},
    {"base_qkv", kTokens, 2304, 768, false},    {"base_proj", kTokens, 768, 768, false},
    {"base_fc1", kTokens, 3072, 768, false},    {"base_fc2", kTokens, 768, 3072, false},
    {"attn_qk", kTokens, kTokens, 64, false},   {"attn_v_s16", kTokens, 64, kTokens, true},
    {"attn_v_u8", kTokens, 64, kTokens, false},
};

void run_gemm(benchmark::State& state, vk::Isa isa, Shape s) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> u8(0, 255);
  std::uniform_int_distribution<int> s8(-128, 127);
  std::uniform_int_distribution<int> s16(0, 32767);
  std::vector<int8_t> b(static_cast<size_t>(s.n) * s.k);
  for (auto& x : b) x = static_cast<int8_t>(s8(rng));
  std::vector<int32_t> c(static_cast<size_t>(s.m) * s.n);
  std::vector<uint8_t> packed;
  if (s.s16) {
    // attn@V packs V ([tokens][head_dim]) from its transposed layout.
    std::vector<int16_t> a(static_cast<size_t>(s.m) * s.k);
    for (auto& x : a) x = static_cast<int16_t>(s16(rng));
    packed.resize(vk::packed_b16_bytes(isa, s.n, s.k));
    vk::pack_b16_s8_transposed(isa, s.n, s.k, b.data(), s.n, packed.data());
    for (auto _ : state) {
      vk::gemm_s16s8s32(isa, s.m, s.n, s.k, a.data(), s.k, packed.data(), c.data(), s.n);
      benchmark::DoNotOptimize(c.data());
      benchmark::ClobberMemory();
    }
  } else {
    std::vector<uint8_t> a(static_cast<size_t>(s.m) * s.k);
    for (auto& x : a) x = static_cast<uint8_t>(u8(rng));
    packed.resize(vk::packed_b_bytes(isa, s.n, s.k));
    vk::pack_b_s8(isa, s.n, s.k, b.data(), s.k, packed.data());
    for (auto _ : state) {
      vk::gemm_u8s8s32(isa, s.m, s.n, s.k, a.data(), s.k, packed.data(), c.data(), s.n);
      benchmark::DoNotOptimize(c.data());
      benchmark::ClobberMemory();
    }
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

const bool kRegistered = [] {
  for (vk::Isa isa : {vk::Isa::kRef, vk::Isa::kAvx2, vk::Isa::kAvx512Vnni, vk::Isa::kAmx}) {
    if (!vk::isa_supported(isa)) continue;
    for (const Shape& s : kShapes) {
      const std::string name = std::string(s.s16 ? "gemm_s16s8s32/" : "gemm_u8s8s32/") +
                               vk::isa_name(isa) + "/" + s.name + "/" + std::to_string(s.m) + "x" +
                               std::to_string(s.n) + "x" + std::to_string(s.k);
      benchmark::RegisterBenchmark(name.c_str(), run_gemm, isa, s)->Unit(benchmark::kMicrosecond);
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
