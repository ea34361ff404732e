// vitint-bench: end-to-end latency of the integer engine on a .vti model, or
// on a random-weight model of a standard timm architecture built in-process
// (random checkpoint -> calibration on synthetic images -> quantization), so
// that speed can be measured without any checkpoint or data set.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "converter/calibrate.h"
#include "converter/cli.h"
#include "bench/temp_file.h"
#include "bench/timing.h"
#include "converter/synthetic.h"
#include "engine/src/format.h"
#include "vitint/error.h"
#include "vitint/vitint.h"

namespace {

const char* kUsage = R"(usage: vitint-bench MODEL.vti | --arch NAME [--threads T] [--batch B]
                    [--iterations N] [--warmup W] [--isa ref|avx2|avxvnni|avx512vnni|amx]
                    [--calib-images C] [--seed S] [--attn-bits 8|4] [--save FILE.vti [--force]]
                    [--profile] [--json] [--quiet]

Measures the latency of Session::run (preprocessed images -> logits).
  MODEL.vti          a converted model
  --arch NAME        build a random-weight model in-process instead, for one of
                     deit_{tiny,small,base}_patch16_224, vit_{tiny,small,base}_patch16_224,
                     vit_{tiny,small,base}_patch16_clip_224 (pre-norm, as the CLIP towers),
                     vit_{tiny,small,base}_patch16_reg<N>_gap_224 and _gap_224 (average pooling)
                     (calibrated on C synthetic smooth-noise images, default 8),
                     with 8-bit attention or (--attn-bits 4) 4-bit Log-Int-Softmax
  --threads T        threads of the session (default 1)
  --batch B          images per run (default 1)
  --iterations N     timed runs (default 100); --warmup W untimed runs first
                     (default max(5, N/10))
  --isa              kernel path (default: best for this CPU, or $VITINT_ISA)
  --save FILE.vti    keep the generated model (with --arch); an existing file is
                     refused unless --force
  --profile          also time every operator (on a second session, after the
                     latency runs) and print the time per kind of operator
  --json             print the result as JSON on stdout (with --profile: per
                     kind and per operator)
Reports the median latency per run, p10 / p90, and images per second at the median.
)";

using vitint::bench::percentile;
using vitint::bench::TempFile;
using vitint::bench::time_ms;
using vitint::convert::Args;

// Random checkpoint -> calibration -> quantization -> .vti file at `path`.
void build_random_model(const std::string& arch, uint32_t seed, int calib_images, int attention_bits,
                        const std::string& path, bool overwrite, bool quiet) {
  using namespace vitint::convert;
  const auto t0 = std::chrono::steady_clock::now();
  vitint::format::Writer writer;
  Recipe recipe;
  recipe.attention_bits = attention_bits;
  convert_random_model(arch, seed, calib_images, recipe, &writer);
  writer.write(path, overwrite);
  if (!quiet) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "vitint-bench: built random %s (calibrated on %d synthetic images) in %.1f s\n",
                 arch.c_str(), calib_images, secs);
  }
}

void check(const vitint::Status& st) {
  if (!st) throw vitint::Error(st.message());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args(argc, argv,
                    {"arch", "threads", "batch", "iterations", "warmup", "isa", "calib-images", "seed", "attn-bits", "save"},
                    {"json", "quiet", "profile", "force", "help"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    const bool quiet = args.has("quiet");
    const bool json = args.has("json");
    const int threads = args.get_int("threads", 1, 1, 256);  // SessionOptions::threads
    const int batch = args.get_int("batch", 1, 1, 4096);
    const int iterations = args.get_int("iterations", 100, 1, 10000000);
    const int warmup = args.get_int("warmup", std::max(5, iterations / 10), 0, 10000000);
    const int calib_images = args.get_int("calib-images", 8, 1, 10000);
    const int seed = args.get_int("seed", 0, 0, 1 << 30);
    const int attention_bits = args.get_choice("attn-bits", 8, {8, 4});

    std::string model_path;
    std::unique_ptr<TempFile> temp;
    const bool random_model = args.has("arch");
    if (random_model == (args.positional().size() == 1) || args.positional().size() > 1)
      throw vitint::Error("give either one MODEL.vti or --arch NAME\n" + std::string(kUsage));
    if (random_model) {
      if (args.has("save")) {
        model_path = args.get("save");
        // Refuse before the model is built (seconds for DeiT-B), not after.
        vitint::convert::refuse_existing(model_path, "--save:", args.has("force"));
      } else {
        if (args.has("force")) throw vitint::Error("--force only applies with --save");
        temp = std::make_unique<TempFile>();
        model_path = temp->path();
      }
      build_random_model(args.get("arch"), static_cast<uint32_t>(seed), calib_images, attention_bits, model_path,
                         args.has("force") || temp != nullptr, quiet || json);
    } else {
      if (args.has("save") || args.has("attn-bits") || args.has("force"))
        throw vitint::Error("--save, --force and --attn-bits only apply with --arch");
      model_path = args.positional()[0];
    }

    vitint::LoadOptions load_options;
    load_options.isa = args.get("isa", "");
    std::shared_ptr<const vitint::Model> model;
    check(vitint::Model::load(model_path, load_options, &model));
    temp.reset();  // the model is loaded (mapped); the file is not needed any more
    const vitint::ModelInfo& info = model->info();

    vitint::SessionOptions session_options;
    session_options.max_batch = batch;
    session_options.threads = threads;
    std::unique_ptr<vitint::Session> session;
    check(vitint::Session::create(model, session_options, &session));

    const auto images = vitint::convert::synthetic_images(batch, info.image_size, static_cast<uint32_t>(seed) + 1000);
    std::vector<uint8_t> input;
    for (const auto& img : images) input.insert(input.end(), img.begin(), img.end());
    std::vector<float> logits(static_cast<size_t>(batch) * static_cast<size_t>(info.num_classes));

    const std::vector<double> ms =
        time_ms(warmup, iterations, [&] { check(session->run(input.data(), batch, logits.data())); });
    const double median = percentile(ms, 0.5);
    const double p10 = percentile(ms, 0.1);
    const double p90 = percentile(ms, 0.9);
    const double min = *std::min_element(ms.begin(), ms.end());
    double mean = 0;
    for (double v : ms) mean += v;
    mean /= static_cast<double>(ms.size());
    const double ips = 1000.0 * batch / median;
    const int top1 = session->top_k(logits.data(), 1).front().class_index;

    // --profile: the same runs again on a session that times every operator
    // (so that the latency above carries no timing overhead), summed by kind.
    std::vector<vitint::OpProfile> ops;
    std::vector<std::pair<std::string, double>> kinds;  // kind, ms per run, in first-seen order
    double profiled_ms = 0;
    if (args.has("profile")) {
      vitint::SessionOptions po = session_options;
      po.profile = true;
      std::unique_ptr<vitint::Session> ps;
      check(vitint::Session::create(model, po, &ps));
      for (int i = 0; i < iterations; ++i) check(ps->run(input.data(), batch, logits.data()));
      ops = ps->profile();
      for (const auto& o : ops) {
        const double per_run = o.total_ms / static_cast<double>(o.runs);
        profiled_ms += per_run;
        auto it = std::find_if(kinds.begin(), kinds.end(), [&](const auto& k) { return k.first == o.kind; });
        if (it == kinds.end()) {
          kinds.emplace_back(o.kind, per_run);
        } else {
          it->second += per_run;
        }
      }
    }

    if (json) {
      nlohmann::ordered_json j = {{"tool", "vitint-bench"},
                          {"version", vitint::version()},
                          {"model", random_model ? std::string("random") : model_path},
                          {"architecture", info.architecture},
                          {"isa", model->isa()},
                          {"threads", threads},
                          {"batch", batch},
                          {"iterations", iterations},
                          {"warmup", warmup},
                          {"attention_bits", info.attention_bits},
                          {"residual_bits", info.residual_bits},
                          {"median_ms", median},
                          {"p10_ms", p10},
                          {"p90_ms", p90},
                          {"mean_ms", mean},
                          {"min_ms", min},
                          {"images_per_s", ips},
                          {"top1_of_first_image", top1}};
      if (!ops.empty()) {
        nlohmann::ordered_json by_kind = nlohmann::ordered_json::array(), per_op = nlohmann::ordered_json::array();
        for (const auto& k : kinds)
          by_kind.push_back({{"kind", k.first}, {"ms_per_run", k.second}, {"share", k.second / profiled_ms}});
        for (const auto& o : ops)
          per_op.push_back({{"name", o.name}, {"kind", o.kind}, {"ms_per_run", o.total_ms / static_cast<double>(o.runs)}});
        j["profile"] = {{"ms_per_run", profiled_ms}, {"by_kind", by_kind}, {"ops", per_op}};
      }
      std::cout << vitint::convert::json_text(j) << "\n";
    } else {
      std::printf("%s  isa=%s  threads=%d  batch=%d  iterations=%d (+%d warm-up)\n", info.architecture.c_str(),
                  model->isa().c_str(), threads, batch, iterations, warmup);
      std::printf("latency  median %.3f ms  p10 %.3f ms  p90 %.3f ms  min %.3f ms  mean %.3f ms\n", median, p10, p90,
                  min, mean);
      std::printf("throughput  %.1f images/s (at the median)\n", ips);
      if (!ops.empty()) {
        std::printf("profile (mean over %d runs, %.3f ms per run in operators):\n", iterations, profiled_ms);
        for (const auto& k : kinds)
          std::printf("  %-24s %8.3f ms  %5.1f%%\n", k.first.c_str(), k.second, 100.0 * k.second / profiled_ms);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-bench: error: %s\n", e.what());
    return 1;
  }
}
