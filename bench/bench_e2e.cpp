// End-to-end latency of Session::run on a converted model (one image, or a
// batch), per thread count. The model comes from $VITINT_BENCH_MODEL (a .vti
// file, e.g. written by vitint-convert); without it the benchmarks are skipped.
//   VITINT_BENCH_MODEL=/tmp/d.vti build/bench/vitint_bench_e2e
// The input is a fixed pseudo-random image: the integer pipeline has no
// data-dependent fast paths worth modelling, so any image gives the same time.
// On a shared machine, ask for repetitions and read the "min" aggregate:
//   --benchmark_repetitions=30 --benchmark_min_time=0.05
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "vitint/vitint.h"

namespace {

std::shared_ptr<const vitint::Model> load_model() {
  const char* path = std::getenv("VITINT_BENCH_MODEL");
  if (!path || !*path) return nullptr;
  vitint::LoadOptions lo;
  if (const char* isa = std::getenv("VITINT_BENCH_ISA")) lo.isa = isa;
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status st = vitint::Model::load(path, lo, &model);
  if (!st) return nullptr;
  return model;
}

void e2e(benchmark::State& state) {
  static const std::shared_ptr<const vitint::Model> model = load_model();
  if (!model) {
    state.SkipWithError("set VITINT_BENCH_MODEL to a .vti file");
    return;
  }
  const int threads = static_cast<int>(state.range(0));
  const int batch = static_cast<int>(state.range(1));
  const vitint::ModelInfo& info = model->info();
  vitint::SessionOptions so;
  so.max_batch = batch;
  so.threads = threads;
  std::unique_ptr<vitint::Session> session;
  if (!vitint::Session::create(model, so, &session)) {
    state.SkipWithError("Session::create failed");
    return;
  }
  std::vector<uint8_t> images(static_cast<size_t>(batch) * info.image_size * info.image_size * 3);
  std::mt19937 rng(1);
  for (auto& p : images) p = static_cast<uint8_t>(rng() >> 24);
  std::vector<float> logits(static_cast<size_t>(batch) * info.num_classes);
  if (!session->run(images.data(), batch, logits.data())) {
    state.SkipWithError("Session::run failed");
    return;
  }
  for (auto _ : state) {
    session->run(images.data(), batch, logits.data());
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(model->isa() + " attn" + std::to_string(info.attention_bits));
  state.counters["images/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * batch, benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(e2e)
    ->ArgNames({"threads", "batch"})
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({1, 4})
    ->Args({2, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MeasureProcessCPUTime()
    ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); });

BENCHMARK_MAIN();
