// vitint-eval: accuracy of an integer model (.vti) or of the FP32 reference
// (checkpoint directory) on a labeled image list.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "converter/checkpoint.h"
#include "converter/cli.h"
#include "converter/dataset.h"
#include "converter/npy.h"
#include "converter/reference.h"
#include "vitint/error.h"
#include "vitint/vitint.h"

namespace {

const char* kUsage = R"(usage: vitint-eval MODEL --list LIST --root DIR [--skip N] [--limit M]
                   [--reference-logits FILE.npy] [--predictions FILE] [--threads T]
                   [--isa ref|avx2|avx512vnni|amx] [--json] [--quiet]

MODEL is a .vti file (integer engine) or a timm checkpoint directory (FP32
reference forward). Evaluates list entries [N, N + M) and prints top-1, top-5
and images per second. --reference-logits (float32 [rows, classes], rows in
list order, e.g. timm's FP32 logits) adds the top-1 agreement with them.
--predictions writes "FILE TOP1 TOP2 TOP3 TOP4 TOP5" per image.
Example (evaluation split: skip the 100 calibration images):
  vitint-eval deit_tiny.vti --list val.txt --root imagenet-val-1300 --skip 100
)";

using namespace vitint::convert;

std::vector<int> top5(const float* logits, int n) {
  std::vector<int> idx(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  const int k = std::min(5, n);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  idx.resize(static_cast<size_t>(k));
  return idx;
}

bool is_directory(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Classifies one preprocessed image into `logits`; one per worker thread.
struct Runner {
  virtual ~Runner() = default;
  virtual void run(const uint8_t* image, float* logits) = 0;
};

struct IntRunner final : Runner {
  std::unique_ptr<vitint::Session> session;
  explicit IntRunner(const std::shared_ptr<const vitint::Model>& model) {
    const vitint::Status st = vitint::Session::create(model, {}, &session);
    if (!st) throw vitint::Error(st.message());
  }
  void run(const uint8_t* image, float* logits) override {
    const vitint::Status st = session->run(image, 1, logits);
    if (!st) throw vitint::Error(st.message());
  }
};

struct RefRunner final : Runner {
  const ReferenceModel& model;
  explicit RefRunner(const ReferenceModel& m) : model(m) {}
  void run(const uint8_t* image, float* logits) override {
    const std::vector<float> out = model.forward(image);
    std::copy(out.begin(), out.end(), logits);
  }
};

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args args(argc, argv,
                    {"list", "root", "skip", "limit", "reference-logits", "predictions", "threads", "isa"},
                    {"json", "quiet", "help"});
    if (args.has("help")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (args.positional().size() != 1) throw vitint::Error("expected exactly one MODEL\n" + std::string(kUsage));
    const std::string model_path = args.positional()[0];
    const std::string list_path = args.require("list");
    const std::string root = args.require("root");
    const int skip = args.get_int("skip", 0, 0, 100000000);
    const int limit = args.get_int("limit", -1, 1, 100000000);
    const int threads = args.get_int("threads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 1, 256);
    const auto full_list = read_image_list(list_path);
    const auto items = slice(full_list, skip, limit, "list " + list_path);
    const int n = static_cast<int>(items.size());

    // Either engine, behind one interface.
    const bool fp32 = is_directory(model_path);
    std::unique_ptr<Checkpoint> ckpt;
    std::unique_ptr<ReferenceModel> ref;
    std::shared_ptr<const vitint::Model> model;
    int image_size = 0, classes = 0;
    double crop_pct = 0;
    vitint::Interpolation interp{};
    std::string engine;
    if (fp32) {
      ckpt = std::make_unique<Checkpoint>(Checkpoint::load(model_path));
      ref = std::make_unique<ReferenceModel>(*ckpt);
      const VitConfig& c = ckpt->config();
      image_size = c.image_size;
      classes = c.num_classes;
      crop_pct = c.crop_pct;
      interp = c.interpolation;
      engine = "fp32-reference";
    } else {
      vitint::LoadOptions lo;
      lo.isa = args.get("isa");
      const vitint::Status st = vitint::Model::load(model_path, lo, &model);
      if (!st) throw vitint::Error(st.message());
      const auto& i = model->info();
      image_size = i.image_size;
      classes = i.num_classes;
      crop_pct = i.crop_pct;
      interp = i.interpolation;
      engine = "libvitint-" + model->isa();
    }

    NpyArray ref_logits;
    const bool agree_mode = args.has("reference-logits");
    if (agree_mode) {
      ref_logits = read_npy_f32(args.get("reference-logits"));
      if (ref_logits.shape.size() != 2 || ref_logits.shape[1] != classes ||
          ref_logits.shape[0] < static_cast<int64_t>(full_list.size()))
        throw vitint::Error("reference logits " + args.get("reference-logits") + " must be [" +
                            std::to_string(full_list.size()) + ", " + std::to_string(classes) + "] float32");
    }

    std::vector<std::vector<int>> preds(static_cast<size_t>(n));
    std::atomic<int> next{0}, done{0};
    std::exception_ptr failure;
    std::mutex mu;
    Progress bar("evaluating", n, !args.has("quiet"));
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < std::min(threads, n); ++t)
      pool.emplace_back([&, t] {
        try {
          std::unique_ptr<Runner> runner;
          if (fp32) runner = std::make_unique<RefRunner>(*ref);
          else runner = std::make_unique<IntRunner>(model);
          std::vector<float> logits(static_cast<size_t>(classes));
          for (int i; (i = next++) < n;) {
            const auto& item = items[static_cast<size_t>(i)];
            const vitint::Image img =
                vitint::preprocess(vitint::load_image(root + "/" + item.file), image_size, crop_pct, interp);
            runner->run(img.rgb.data(), logits.data());
            preds[static_cast<size_t>(i)] = top5(logits.data(), classes);
            ++done;
            if (t == 0) bar.update(done);
          }
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!failure) failure = std::current_exception();
          next = n;
        }
      });
    for (auto& th : pool) th.join();
    if (failure) std::rethrow_exception(failure);
    bar.finish();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    int top1 = 0, top5c = 0, agree = 0, labeled = 0;
    for (int i = 0; i < n; ++i) {
      const auto& p = preds[static_cast<size_t>(i)];
      const int label = items[static_cast<size_t>(i)].label;
      if (label >= 0) {
        ++labeled;
        top1 += p[0] == label;
        top5c += std::find(p.begin(), p.end(), label) != p.end();
      }
      if (agree_mode) {
        const float* r = ref_logits.data.data() + static_cast<size_t>(skip + i) * static_cast<size_t>(classes);
        agree += p[0] == top5(r, classes)[0];
      }
    }
    if (args.has("predictions")) {
      std::ofstream f(args.get("predictions"));
      if (!f) throw vitint::Error("cannot write predictions file " + args.get("predictions"));
      for (int i = 0; i < n; ++i) {
        f << items[static_cast<size_t>(i)].file;
        for (int c : preds[static_cast<size_t>(i)]) f << ' ' << c;
        f << '\n';
      }
    }
    const double pct = labeled ? 100.0 / labeled : 0.0;
    if (args.has("json")) {
      nlohmann::json j = {{"model", model_path}, {"engine", engine},      {"images", n},
                          {"skip", skip},        {"top1", top1 * pct},    {"top5", top5c * pct},
                          {"seconds", secs},     {"images_per_second", n / secs}, {"threads", threads}};
      if (agree_mode) j["agreement"] = 100.0 * agree / n;
      std::cout << j.dump(2) << "\n";
    } else {
      std::printf("%s (%s): %d images, top-1 %.2f%%, top-5 %.2f%%", model_path.c_str(), engine.c_str(), n, top1 * pct,
                  top5c * pct);
      if (agree_mode) std::printf(", top-1 agreement with reference %.2f%%", 100.0 * agree / n);
      std::printf(", %.1f images/s (%d threads, including decoding)\n", n / secs, threads);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-eval: error: %s\n", e.what());
    return 1;
  }
}
