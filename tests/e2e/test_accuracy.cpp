// End-to-end accuracy on the real evaluation split (val.txt lines 101-1300):
// the FP32 reference against timm, and the integer engine against the bars
// of the issue tracker. The integer models are converted by the ctest
// fixture `convert_models` (tests/convert_models.sh) into VITINT_TEST_MODELS.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "converter/evaluate.h"
#include "converter/npy.h"
#include "shared_data.h"
#include "vitint/kernels/cpu.h"
#include "vitint/image.h"
#include "vitint/vitint.h"

namespace {

using namespace vitint::convert;

std::string test_models_dir() {
  const char* env = std::getenv("VITINT_TEST_MODELS");
  return env && *env ? env : VITINT_DEFAULT_TEST_MODELS;
}

// The evaluation split, or its first VITINT_EVAL_LIMIT images when set (a
// quicker, documented subset; the bars then hold only approximately).
std::vector<LabeledImage> eval_split() {
  const auto all = read_image_list(vitint::test::val_dir() + "/val.txt");
  const char* lim = std::getenv("VITINT_EVAL_LIMIT");
  return slice(all, 100, lim && *lim ? std::atoi(lim) : -1, "evaluation split");
}

EvalResult run(const std::string& model, const std::string& timm_name) {
  const Engine e = open_engine(model, "");
  const NpyArray ref = read_npy_f32(vitint::test::val_dir() + "/timm_fp32_logits/" + timm_name + ".npy");
  const auto items = eval_split();
  const float* rows = ref.data.data() + static_cast<size_t>(100) * static_cast<size_t>(e.input.num_classes);
  const int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const EvalResult r = evaluate(items, vitint::test::val_dir(), e.input, e.factory, rows, threads, false);
  MESSAGE(model << " (" << e.name << "): " << r.images << " images, top-1 " << r.top1 << ", top-5 " << r.top5
                << ", agreement " << r.agreement);
  return r;
}

std::string vti(const std::string& name) { return test_models_dir() + "/" + name + ".vti"; }

}  // namespace

TEST_CASE("e2e: FP32 reference DeiT-Tiny top-1 within 0.3 of timm (81.75)") {
  const EvalResult r = run(vitint::test::model_dir(vitint::test::kDeitTiny), vitint::test::kDeitTiny);
  CHECK(r.top1 >= 81.75 - 0.3);
  CHECK(r.top1 <= 81.75 + 0.3);
  CHECK(r.agreement >= 99.5);
}

TEST_CASE("e2e: FP32 reference ViT-Tiny AugReg top-1 within 0.3 of timm (82.33)") {
  const EvalResult r = run(vitint::test::model_dir(vitint::test::kVitTiny), vitint::test::kVitTiny);
  CHECK(r.top1 >= 82.33 - 0.3);
  CHECK(r.top1 <= 82.33 + 0.3);
  CHECK(r.agreement >= 99.5);
}

// Bars: agreement with timm's FP32 top-1 is the fidelity measure (a real
// regression costs more than a point of it); top-1 itself moves by up to
// +-0.5 (6 of the 1200 images) with changes of the integer rounding that
// leave agreement as good or better, so its bars sit below that noise.
// FQ-ViT (fake quantization) on this model: 81.75 / 96.42 (MinMax+PTS) and
// 80.33 / 94.42 (MinMax+PTS+LIS).
TEST_CASE("e2e: integer DeiT-Tiny W8A8, 8-bit attention") {
  const EvalResult r = run(vti("deit_tiny_a8"), vitint::test::kDeitTiny);
  CHECK(r.top1 >= 81.0);
  CHECK(r.agreement >= 96.0);
}

TEST_CASE("e2e: integer DeiT-Tiny W8A8, 4-bit Log-Int-Softmax attention") {
  const EvalResult r = run(vti("deit_tiny_a4"), vitint::test::kDeitTiny);
  CHECK(r.top1 >= 80.5);
  CHECK(r.agreement >= 95.5);
}

// FQ-ViT's best on this model is 58.67 / 63.17 (8-bit) and 58.33 / 62.08
// (4-bit attention).
TEST_CASE("e2e: integer ViT-Tiny AugReg W8A8, 8-bit attention") {
  const EvalResult r = run(vti("vit_tiny_a8"), vitint::test::kVitTiny);
  CHECK(r.top1 >= 81.0);
  CHECK(r.agreement >= 95.0);
}

TEST_CASE("e2e: integer ViT-Tiny AugReg W8A8, 4-bit Log-Int-Softmax attention") {
  const EvalResult r = run(vti("vit_tiny_a4"), vitint::test::kVitTiny);
  CHECK(r.top1 >= 80.5);
  CHECK(r.agreement >= 95.0);
}

// Every kernel path this CPU supports gives the same logits, bit for bit, on
// the real models and real images (the first 16 of the evaluation split; the
// scalar reference path costs ~0.2 s per image), with 1 and 2 threads.
TEST_CASE("e2e: real models give bit-identical logits on every kernel path") {
  const auto items = eval_split();
  const size_t n = std::min<size_t>(16, items.size());
  for (const char* name : {"deit_tiny_a8", "deit_tiny_a4", "vit_tiny_a8", "vit_tiny_a4"}) {
    CAPTURE(name);
    std::vector<float> want;
    std::vector<uint8_t> input;
    for (vitint::kernels::Isa path : vitint::kernels::kAllIsas) {
      const char* isa = vitint::kernels::isa_name(path);
      vitint::LoadOptions lo;
      lo.isa = isa;
      std::shared_ptr<const vitint::Model> model;
      const vitint::Status st = vitint::Model::load(vti(name), lo, &model);
      if (!st) {
        // Only "not supported on this CPU" may skip a path.
        CHECK_MESSAGE(st.message().find("not supported") != std::string::npos, st.message());
        continue;
      }
      const vitint::ModelInfo& info = model->info();
      if (input.empty()) {
        for (size_t i = 0; i < n; ++i) {
          vitint::Image img;
          const vitint::Status ls = vitint::load_image(vitint::test::val_dir() + "/" + items[i].file, &img);
          REQUIRE_MESSAGE(ls.ok(), ls.message());
          const vitint::Image pre = vitint::preprocess(img, info.image_size, info.crop_pct, info.interpolation);
          input.insert(input.end(), pre.rgb.begin(), pre.rgb.end());
        }
      }
      for (int threads : {1, 2}) {
        CAPTURE(isa);
        CAPTURE(threads);
        vitint::SessionOptions so;
        so.threads = threads;
        so.max_batch = static_cast<int>(n);
        std::unique_ptr<vitint::Session> s;
        REQUIRE(vitint::Session::create(model, so, &s).ok());
        std::vector<float> logits(n * static_cast<size_t>(info.num_classes));
        REQUIRE(s->run(input.data(), static_cast<int>(n), logits.data()).ok());
        if (want.empty()) {
          want = logits;
        } else {
          CHECK(std::memcmp(want.data(), logits.data(), sizeof(float) * want.size()) == 0);
        }
      }
    }
  }
}
