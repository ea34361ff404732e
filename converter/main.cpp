// vitint-convert: timm checkpoint + calibration images -> integer .vti model.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "converter/calibrate.h"
#include "converter/cli.h"
#include "converter/dataset.h"
#include "converter/quantize.h"
#include "converter/report.h"
#include "engine/src/format.h"
#include "vitint/error.h"

namespace {

const char* kUsage = R"(usage: vitint-convert CHECKPOINT_DIR -o MODEL.vti --calib-list LIST --calib-root DIR
                      [--calib-count N] [--attn-bits 8|4] [--quant-method minmax|ema|percentile|omse]
                      [--pts | --no-pts] [--lis | --no-lis] [--residual-bits 16|8]
                      [--labels FILE] [--report FILE.json] [--force] [--quiet] [--json]

CHECKPOINT_DIR holds model.safetensors and config.json as timm publishes them
(e.g. the files of hf-hub:timm/deit_tiny_patch16_224.fb_in1k); tensors in F32,
F16 or BF16.
LIST has "FILE LABEL" lines (ImageNet val.txt style); the first N images
(default 100) calibrate the activation quantizers.
  --quant-method M    activation calibrator, as FQ-ViT defines them (default minmax):
                      minmax      running min/max
                      ema         min/max smoothed by an EMA (0.01) over 10 mini-batches of images
                      percentile  the 1e-5 and 1 - 1e-5 quantiles
                      omse        min/max shrunk by (1 - 0.01 i), i < 90, least squared error
                      (with PTS the residual-stream ranges stay min/max, as FQ-ViT's PTF observer)
  --attn-bits 8|4     attention probabilities: uniform uint8, or 4-bit Log-Int-Softmax
  --lis / --no-lis    same as --attn-bits 4 / 8 (FQ-ViT's switch)
  --pts / --no-pts    power-of-two channel scales on LayerNorm inputs (default on)
  --channel-ln / --no-channel-ln
                      per-channel LayerNorm-output quantization folded into the LayerNorm
                      and the next linear layer (RepQ-ViT style; default on)
  --channel-gelu / --no-channel-gelu
                      per-channel GELU-output (fc2 input) quantization folded into fc2 (default on)
  --channel-attn / --no-channel-attn
                      per-channel attention-context (proj input) quantization folded into proj (default on)
  --no-lis-normalize   4-bit attention: keep the rows' sums of 2^-code as FQ-ViT does
                      (default: rescale each row to a unit sum)
  --bias-correction    absorb the weight rounding's expected output shift into the biases
                      (from calibration means; default off)
  --residual-bits     bits of the integer residual stream (default 16)
  --labels FILE       class names, one "nXXXXXXXX name" line per class, stored in the model
  --force             overwrite MODEL.vti and the --report file if they exist
  --report FILE.json  per-layer statistics (range, outlier channels, quantization error as SQNR
                      on the calibration images) to FILE.json, and a table on stdout (on
                      stderr with --json; none with --quiet)
  --json              print a JSON summary on stdout
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace vitint::convert;
  try {
    const Args args(argc, argv,
                    {"output", "calib-list", "calib-root", "calib-count", "attn-bits", "quant-method",
                     "residual-bits", "labels", "report"},
                    {"pts", "no-pts", "lis", "no-lis", "channel-ln", "no-channel-ln", "channel-gelu", "no-channel-gelu", "channel-attn", "no-channel-attn", "bias-correction", "no-lis-normalize", "force", "quiet", "json", "help"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1) throw vitint::Error("expected exactly one CHECKPOINT_DIR\n" + std::string(kUsage));
    const std::string ckpt_dir = args.positional()[0];
    const std::string output = args.require("output");
    const bool quiet = args.has("quiet");
    const bool force = args.has("force");

    ConvertInfo info;
    info.recipe.method = args.get("quant-method", "minmax");
    if (!calib::is_method(info.recipe.method))
      throw vitint::Error("--quant-method must be minmax, ema, percentile or omse (got '" + info.recipe.method + "')");
    // --X / --no-X switches (on unless --no-X); giving both is an error.
    auto toggle = [&](const std::string& x) {
      if (args.has(x) && args.has("no-" + x)) throw vitint::Error("--" + x + " and --no-" + x + " contradict each other");
      return !args.has("no-" + x);
    };
    info.recipe.pts = toggle("pts");
    const bool lis = toggle("lis");  // applied below, after --attn-bits
    info.recipe.channel_ln = toggle("channel-ln");
    info.recipe.channel_gelu = toggle("channel-gelu");
    info.recipe.channel_attn = toggle("channel-attn");
    info.recipe.bias_correction = args.has("bias-correction");
    info.recipe.lis_normalize = !args.has("no-lis-normalize");
    info.recipe.attention_bits = args.get_choice("attn-bits", 8, {8, 4});
    if (args.has("lis") || args.has("no-lis")) info.recipe.attention_bits = lis ? 4 : 8;
    info.recipe.residual_bits = args.get_choice("residual-bits", 16, {16, 8});
    info.calib_count = args.get_int("calib-count", 100, 1, 100000);
    info.calib_list = args.require("calib-list");
    const std::string calib_root = args.require("calib-root");

    // Refuse early, before minutes of calibration, if the output exists.
    refuse_existing(output, "output", force);
    if (args.has("report")) refuse_existing(args.get("report"), "report", force);
    const auto t0 = std::chrono::steady_clock::now();
    const Checkpoint ckpt = Checkpoint::load(ckpt_dir);
    const VitConfig& cfg = ckpt.config();
    if (args.has("labels")) {
      info.labels = read_class_names(args.get("labels"));
      if (info.labels.size() != static_cast<size_t>(cfg.num_classes))
        throw vitint::Error("labels file " + args.get("labels") + " has " + std::to_string(info.labels.size()) +
                            " classes, the model has " + std::to_string(cfg.num_classes));
    }
    const auto list = slice(read_image_list(info.calib_list), 0, info.calib_count, "calibration list " + info.calib_list);
    std::vector<std::vector<uint8_t>> images;
    Progress load("loading calibration images", static_cast<int>(list.size()), !quiet);
    for (const auto& item : list) {
      const vitint::Image img = vitint::preprocess(vitint::load_image(calib_root + "/" + item.file), cfg.image_size,
                                                   cfg.crop_pct, cfg.interpolation);
      images.push_back(img.rgb);
      load.update(static_cast<int>(images.size()));
    }
    load.finish();
    const ReferenceModel model(ckpt);
    const Calibration cal = calibrate(model, images, info.recipe, !quiet);
    vitint::format::Writer writer;
    quantize_vit(ckpt, cal, info, &writer);
    writer.write(output, force);
    if (args.has("report")) {
      const std::string report_path = args.get("report");
      const Report report = build_report(model, images, cal, info.recipe,
                                         vitint::format::Reader::open(output)->metadata(), !quiet);
      std::ofstream f(report_path);
      f << report_json(report).dump(2) << "\n";
      if (!f) throw vitint::Error("cannot write report " + report_path);
      if (!quiet) std::fputs(report_table(report).c_str(), args.has("json") ? stderr : stdout);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (args.has("json")) {
      nlohmann::json j = {{"output", output},
                          {"architecture", cfg.architecture},
                          {"recipe", recipe_json(info.recipe)},
                          {"calibration_images", info.calib_count},
                          {"seconds", secs}};
      std::cout << j.dump(2) << "\n";
    } else if (!quiet) {
      std::printf("wrote %s: %s, W8A8, %s attention, %d-bit residual stream, %s%s calibration on %d images (%.1f s)\n",
                  output.c_str(), cfg.architecture.c_str(),
                  info.recipe.attention_bits == 8 ? "8-bit" : "4-bit Log-Int-Softmax", info.recipe.residual_bits,
                  info.recipe.method.c_str(), info.recipe.pts ? " + PTS" : "", info.calib_count, secs);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-convert: error: %s\n", e.what());
    return 1;
  }
}
