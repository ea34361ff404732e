// vitint-eval: accuracy of an integer model (.vti) or of the FP32 reference
// (checkpoint directory) on a labeled image list.
#include <cstdio>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "converter/checkpoint.h"
#include "converter/cli.h"
#include "converter/evaluate.h"
#include "converter/npy.h"
#include "engine/src/output_files.h"
#include "vitint/error.h"

namespace {

const char* kUsage = R"(usage: vitint-eval MODEL --list LIST --root DIR [--skip N] [--limit M]
                   [--reference-logits FILE.npy] [--predictions FILE] [--threads T]
                   [--isa ref|avx2|avxvnni|avx512vnni|amx] [--force] [--json] [--quiet]

MODEL is a .vti file (integer engine) or a timm checkpoint directory (FP32
reference forward). Evaluates list entries [N, N + M) and prints top-1, top-5
(of the entries with a label; lines without one are classified only) and
images per second. --reference-logits (float32 [rows, classes], rows in
list order, e.g. timm's FP32 logits) adds the top-1 agreement with them.
--predictions writes "FILE TOP1 TOP2 TOP3 TOP4 TOP5" per image (an existing
file is refused unless --force).
Example (evaluation split: skip the 100 calibration images):
  vitint-eval deit_tiny.vti --list val.txt --root imagenet-val-1300 --skip 100
)";

}  // namespace

int main(int argc, char** argv) {
  using namespace vitint::convert;
  try {
    const Args args(argc, argv,
                    {"list", "root", "skip", "limit", "reference-logits", "predictions", "threads", "isa"},
                    {"json", "quiet", "force", "help"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1) throw vitint::Error("expected exactly one MODEL\n" + std::string(kUsage));
    const std::string model_path = args.positional()[0];
    const std::string list_path = args.require("list");
    const int skip = args.get_int("skip", 0, 0, 100000000);
    const int limit = args.get_int("limit", -1, 1, 100000000);
    const int threads = args.get_int("threads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 1, 256);
    if (args.has("predictions")) {
      refuse_existing(args.get("predictions"), "predictions file", args.has("force"));
    } else if (args.has("force")) {
      throw vitint::Error("--force only applies with --predictions");
    }
    const auto full_list = read_image_list(list_path);
    const auto items = slice(full_list, skip, limit, "list " + list_path);
    const Engine engine = open_engine(model_path, args.get("isa"));

    NpyArray ref;
    if (args.has("reference-logits")) {
      ref = read_npy_f32(args.get("reference-logits"));
      if (ref.shape.size() != 2 || ref.shape[1] != engine.input.num_classes ||
          ref.shape[0] != static_cast<int64_t>(full_list.size()))
        throw vitint::Error("reference logits " + args.get("reference-logits") + " must be float32 [" +
                            std::to_string(full_list.size()) + ", " + std::to_string(engine.input.num_classes) +
                            "] (one row per line of " + list_path + "), not " + shape_str(ref.shape));
    }
    const float* ref_rows = ref.data.empty() ? nullptr : ref.data.data() + static_cast<size_t>(skip) * engine.input.num_classes;
    const EvalResult r = evaluate(items, args.require("root"), engine.input, engine.factory, ref_rows, threads,
                                  !args.has("quiet"));

    if (args.has("predictions")) {
      std::string text;
      for (size_t i = 0; i < items.size(); ++i) {
        text += items[i].file;
        for (int c : r.predictions[i]) text += ' ' + std::to_string(c);
        text += '\n';
      }
      vitint::OutputFiles out;
      out.add(args.get("predictions"), "predictions file", text.data(), text.size());
      out.commit(args.has("force"));
    }
    if (args.has("json")) {
      // top1 / top5: percent of the labeled images; null when none has a label.
      nlohmann::json j = {{"model", model_path},   {"engine", engine.name}, {"images", r.images},
                          {"labeled", r.labeled},  {"skip", skip},          {"seconds", r.seconds},
                          {"images_per_second", r.images / r.seconds},      {"threads", threads}};
      j["top1"] = r.labeled ? nlohmann::json(r.top1) : nlohmann::json(nullptr);
      j["top5"] = r.labeled ? nlohmann::json(r.top5) : nlohmann::json(nullptr);
      if (r.agreement >= 0) j["agreement"] = r.agreement;
      if (!engine.recipe.empty()) j["recipe"] = nlohmann::json::parse(engine.recipe);
      std::cout << json_text(j) << "\n";
    } else {
      std::printf("%s (%s): %d images", model_path.c_str(), engine.name.c_str(), r.images);
      if (r.labeled == 0) {
        std::printf(", no labels in the list (top-1 / top-5 not measured)");
      } else {
        if (r.labeled < r.images) std::printf(", %d of them labeled", r.labeled);
        std::printf(", top-1 %.2f%%, top-5 %.2f%%", r.top1, r.top5);
      }
      if (r.agreement >= 0) std::printf(", top-1 agreement with reference %.2f%%", r.agreement);
      std::printf(", %.1f images/s (%d threads, including decoding)\n", r.images / r.seconds, threads);
      if (!engine.recipe.empty()) std::printf("recipe: %s\n", recipe_summary(engine.recipe).c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-eval: error: %s\n", e.what());
    return 1;
  }
}
