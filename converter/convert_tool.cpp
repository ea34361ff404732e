#include "converter/convert_tool.h"

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "converter/calibrate.h"
#include "converter/cli.h"
#include "converter/dataset.h"
#include "converter/quantize.h"
#include "converter/report.h"
#include "engine/src/format.h"
#include "engine/src/output_files.h"
#include "vitint/error.h"

namespace vitint::convert {
namespace {

const char* kUsage = R"(usage: vitint-convert CHECKPOINT_DIR -o MODEL.vti --calib-list LIST --calib-root DIR
                      [--calib-count N] [--attn-bits 8|4] [--quant-method minmax|ema|percentile|omse]
                      [--pts | --no-pts] [--lis | --no-lis] [--residual-bits 16|8]
                      [--shared-stream | --no-shared-stream]
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
  --shared-stream / --no-shared-stream
                      one grid for every residual-stream point, so that each residual add
                      keeps the stream's codes and rescales only the branch (the fast 16-bit
                      residual add); default on with --residual-bits 16, off with 8
  --labels FILE       class names, one "nXXXXXXXX name" line per class, stored in the model
  --force             overwrite MODEL.vti and the --report file if they exist
  --report FILE.json  per-layer statistics (range, outlier channels, quantization error as SQNR
                      on the calibration images) to FILE.json, and a table on stdout (on
                      stderr with --json; none with --quiet)
  --json              print a JSON summary on stdout
)";

}  // namespace

void convert_tool(int argc, char** argv) {
  const Args args(argc, argv,
                  {"output", "calib-list", "calib-root", "calib-count", "attn-bits", "quant-method",
                   "residual-bits", "labels", "report"},
                  {"pts", "no-pts", "lis", "no-lis", "channel-ln", "no-channel-ln", "channel-gelu", "no-channel-gelu",
                   "channel-attn", "no-channel-attn", "shared-stream", "no-shared-stream", "bias-correction",
                   "no-lis-normalize", "force", "quiet", "json",
                   "help"});
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    return;
  }
  if (args.positional().size() != 1) throw Error("expected exactly one CHECKPOINT_DIR\n" + std::string(kUsage));
  const std::string ckpt_dir = args.positional()[0];
  const std::string output = args.require("output");
  const std::string report_path = args.get("report");
  const bool quiet = args.has("quiet");
  const bool force = args.has("force");

  ConvertInfo info;
  info.recipe.method = args.get("quant-method", "minmax");
  if (!calib::is_method(info.recipe.method))
    throw Error("--quant-method must be minmax, ema, percentile or omse (got '" + info.recipe.method + "')");
  // --X / --no-X switches (on unless --no-X); giving both is an error.
  auto toggle = [&](const std::string& x) {
    if (args.has(x) && args.has("no-" + x)) throw Error("--" + x + " and --no-" + x + " contradict each other");
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
  if (args.has("lis") || args.has("no-lis")) {
    if (args.has("attn-bits") && info.recipe.attention_bits != (lis ? 4 : 8))
      throw Error("--attn-bits " + args.get("attn-bits") + " and --" + (lis ? "lis" : "no-lis") +
                  " contradict each other");
    info.recipe.attention_bits = lis ? 4 : 8;
  }
  info.recipe.residual_bits = args.get_choice("residual-bits", 16, {16, 8});
  info.recipe.shared_stream = toggle("shared-stream") && (info.recipe.residual_bits == 16 || args.has("shared-stream"));
  info.calib_count = args.get_int("calib-count", 100, 1, 100000);
  info.calib_list = args.require("calib-list");
  const std::string calib_root = args.require("calib-root");

  // Refuse early, before minutes of calibration: an output over an input or
  // the other output, over an existing file, or in a missing directory.
  std::vector<std::pair<std::string, std::string>> others = {{"checkpoint file", ckpt_dir + "/config.json"},
                                                             {"checkpoint file", ckpt_dir + "/model.safetensors"},
                                                             {"calibration list", info.calib_list}};
  if (args.has("labels")) others.emplace_back("labels file", args.get("labels"));
  refuse_same_file(output, "output", others);
  if (args.has("report")) {
    others.emplace_back("output", output);
    refuse_same_file(report_path, "report", others);
  }
  refuse_existing(output, "output", force);
  if (args.has("report")) refuse_existing(report_path, "report", force);
  const auto t0 = std::chrono::steady_clock::now();
  const Checkpoint ckpt = Checkpoint::load(ckpt_dir);
  const VitConfig& cfg = ckpt.config();
  if (args.has("labels")) {
    info.labels = read_class_names(args.get("labels"));
    if (info.labels.size() != static_cast<size_t>(cfg.num_classes))
      throw Error("labels file " + args.get("labels") + " has " + std::to_string(info.labels.size()) +
                  " classes, the model has " + std::to_string(cfg.num_classes));
  }
  std::vector<LabeledImage> list = read_image_list(info.calib_list);
  if (list.size() < static_cast<size_t>(info.calib_count))
    throw Error("calibration list " + info.calib_list + " has only " + std::to_string(list.size()) +
                (list.size() == 1 ? " image" : " images") + ", fewer than " +
                (args.has("calib-count") ? "" : "the default ") + "--calib-count " +
                std::to_string(info.calib_count) + ": pass --calib-count " + std::to_string(list.size()) +
                " or a longer list");
  list.resize(static_cast<size_t>(info.calib_count));
  std::vector<std::vector<uint8_t>> images;
  Progress load("loading calibration images", static_cast<int>(list.size()), !quiet);
  for (const auto& item : list) {
    const Image img = load_preprocessed(calib_root + "/" + item.file, cfg.image_size, cfg.crop_pct, cfg.interpolation);
    images.push_back(img.rgb);
    load.update(static_cast<int>(images.size()));
  }
  load.finish();
  const ReferenceModel model(ckpt);
  const Calibration cal = calibrate(model, images, info.recipe, !quiet);
  format::Writer writer;
  quantize_vit(ckpt, cal, info, &writer);
  // Both outputs go to temporary files first and replace their paths together.
  OutputFiles outputs;
  writer.add_to(outputs, output, "output");
  std::string table;
  if (args.has("report")) {
    const Report report = build_report(model, images, cal, info.recipe, writer.metadata(), !quiet);
    const std::string text = json_text(report_json(report)) + "\n";
    outputs.add(report_path, "report", text.data(), text.size());
    table = report_table(report);
  }
  outputs.commit(force);
  if (!quiet) std::fputs(table.c_str(), args.has("json") ? stderr : stdout);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (args.has("json")) {
    const nlohmann::json j = {{"output", output},
                              {"architecture", cfg.architecture},
                              {"recipe", recipe_json(info.recipe)},
                              {"calibration_images", info.calib_count},
                              {"seconds", secs}};
    std::cout << json_text(j) << "\n";
  } else if (!quiet) {
    std::printf("wrote %s: %s, W8A8, %s attention, %d-bit residual stream, %s%s calibration on %d images (%.1f s)\n",
                output.c_str(), cfg.architecture.c_str(),
                info.recipe.attention_bits == 8 ? "8-bit" : "4-bit Log-Int-Softmax", info.recipe.residual_bits,
                info.recipe.method.c_str(), info.recipe.pts ? " + PTS" : "", info.calib_count, secs);
  }
}

}  // namespace vitint::convert
