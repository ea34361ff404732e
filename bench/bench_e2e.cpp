// End-to-end latency of Session::run per model, batch 1 and 8, 1 and 2
// threads (Google Benchmark). The models are random-weight models of the
// standard timm architectures, built in-process (random checkpoint ->
// calibration on synthetic images -> quantization), so no checkpoint is
// needed; $VITINT_BENCH_MODEL=FILE.vti measures a converted model instead.
//   build/bench/vitint_bench_e2e
//   VITINT_BENCH_ARCHS=deit_small_patch16_224 build/bench/vitint_bench_e2e
//   VITINT_BENCH_MODEL=deit_tiny.vti build/bench/vitint_bench_e2e
// $VITINT_ISA picks the kernel path. The input is a synthetic image: the
// integer pipeline has no data-dependent fast paths, so any image gives the
// same time. On a shared machine, ask for repetitions and read the median
// aggregate: --benchmark_repetitions=10 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench/temp_file.h"
#include "converter/calibrate.h"
#include "converter/synthetic.h"
#include "engine/src/format.h"
#include "vitint/vitint.h"

namespace {

const char* const kArchs[] = {"deit_tiny_patch16_224", "deit_small_patch16_224", "deit_base_patch16_224",
                              "vit_base_patch16_224"};

// One model per name (an architecture, or the file of $VITINT_BENCH_MODEL),
// built or loaded on first use and kept for the other benchmarks.
std::shared_ptr<const vitint::Model> model_for(const std::string& name, bool from_file, std::string* error) {
  static std::map<std::string, std::shared_ptr<const vitint::Model>> cache;
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  std::shared_ptr<const vitint::Model> model;
  vitint::LoadOptions lo;
  vitint::Status st;
  if (from_file) {
    st = vitint::Model::load(name, lo, &model);
  } else {
    vitint::bench::TempFile file;
    vitint::format::Writer writer;
    vitint::convert::convert_random_model(name, 0, 8, vitint::convert::Recipe{}, &writer);
    writer.write(file.path(), true);
    st = vitint::Model::load(file.path(), lo, &model);
  }
  if (!st) {
    *error = st.message();
    return nullptr;
  }
  cache[name] = model;
  return model;
}

void e2e(benchmark::State& state, const std::string& name, bool from_file) {
  std::string error;
  const std::shared_ptr<const vitint::Model> model = model_for(name, from_file, &error);
  if (!model) {
    state.SkipWithError(error.c_str());
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
  std::vector<uint8_t> images;
  for (const auto& img : vitint::convert::synthetic_images(batch, info.image_size, 1000))
    images.insert(images.end(), img.begin(), img.end());
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

void register_model(const std::string& name, const std::string& label, bool from_file) {
  benchmark::RegisterBenchmark(("e2e/" + label).c_str(),
                               [name, from_file](benchmark::State& s) { e2e(s, name, from_file); })
      ->ArgNames({"threads", "batch"})
      ->ArgsProduct({{1, 2}, {1, 8}})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MeasureProcessCPUTime();
}

}  // namespace

int main(int argc, char** argv) {
  const char* file = std::getenv("VITINT_BENCH_MODEL");
  if (file && *file) {
    register_model(file, "model", true);
  } else {
    const char* only = std::getenv("VITINT_BENCH_ARCHS");
    std::vector<std::string> archs;
    if (only && *only) {
      std::stringstream ss(only);
      for (std::string a; std::getline(ss, a, ',');) archs.push_back(a);
    } else {
      archs.assign(std::begin(kArchs), std::end(kArchs));
    }
    for (const std::string& a : archs) register_model(a, a, false);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
