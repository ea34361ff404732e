// timm variants of the ViT on small random-weight models made with timm:
// DeiT III (deit3_*: position embedding without the class token,
// LayerScale), the distilled DeiT (deit_*_distilled_*: a distillation
// token and a second head), the CLIP image tower (vit_*_clip_*: a
// LayerNorm before the first block, eps 1e-5; with QuickGELU for
// vit_*_clip_quickgelu_*) and two average-pooled ViTs
// without a class token at 256 x 256: with register tokens and fc_norm after
// the pooling (vit_*_reg<N>_gap_*), and pooled after the final norm
// (vit_*_gap_*). Each fixture in tests/fixtures holds timm's
// config.json, its parameter names and shapes and its logits for three
// images (tests/fixtures/make_timm_variants.py made them); the weights,
// computed the same way on both sides, go into an F16 model.safetensors at
// test time (safetensors_files.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "converter/checkpoint.h"
#include "converter/reference.h"
#include "converter/synthetic.h"
#include "engine/src/format.h"
#include "safetensors_files.h"
#include "temp_files.h"
#include "vitint/kernels/cpu.h"
#include "vitint/kernels/quant.h"
#include "vitint/vitint.h"

namespace vc = vitint::convert;

namespace {

std::string fixture(const char* name) { return std::string(VITINT_FIXTURES_DIR) + "/" + name; }
constexpr const char* kDeit3 = "deit3_random";
constexpr const char* kDistilled = "deit_distilled_random";
constexpr const char* kClip = "vit_clip_random";
constexpr const char* kClipQuickGelu = "vit_clip_quickgelu_random";
constexpr const char* kRegGap = "vit_reg_gap_random";
constexpr const char* kGap = "vit_gap_random";

vc::Checkpoint load(const char* name) {
  const vitint::test::TimmFixture checkpoint(fixture(name));
  return vc::Checkpoint::load(checkpoint.tmp.path);
}

// Input images of the fixtures' family, s x s RGB (make_timm_variants.py's formula;
// timm's logits are for k = 0, 1, 2).
std::vector<uint8_t> image(int k, int s) {
  std::vector<uint8_t> img(static_cast<size_t>(s) * s * 3);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x)
      for (int c = 0; c < 3; ++c)
        img[static_cast<size_t>((y * s + x) * 3 + c)] =
            static_cast<uint8_t>((x * 7 + y * 13 + c * 101 + (x * y) % 17 + k * 59) % 256);
  return img;
}

std::vector<std::vector<float>> timm_logits(const char* name) {
  std::ifstream in(fixture(name) + "/timm_logits.json");
  REQUIRE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  return j["logits"].get<std::vector<std::vector<float>>>();
}

size_t argmax(const std::vector<float>& v) { return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin()); }

// The FP32 reference's logits against timm's for a fixture's three images.
void check_reference(const char* name) {
  const vc::Checkpoint ck = load(name);
  const vc::ReferenceModel model(ck);
  const auto want = timm_logits(name);
  REQUIRE(want.size() == 3);
  double max_dev = 0;
  for (int k = 0; k < 3; ++k) {
    const std::vector<float> got = model.forward(image(k, ck.config().image_size).data());
    REQUIRE(got.size() == 10);
    for (size_t j = 0; j < 10; ++j) max_dev = std::max(max_dev, std::abs(double(got[j]) - want[static_cast<size_t>(k)][j]));
    CHECK(argmax(got) == argmax(want[static_cast<size_t>(k)]));
  }
  MESSAGE(std::string(name) << ": max |logit - timm| " << max_dev);
  CHECK(max_dev < 1e-4);  // float rounding only: the inputs are the same integers
}

// The converted fixture (model file `path`) run by the integer engine with
// `threads` threads, against timm's logits and on every kernel path.
void check_engine(const char* name, const vc::Checkpoint& ck, const std::string& path, int threads) {
  const int size = ck.config().image_size;
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status ls = vitint::Model::load(path, {}, &model);
  REQUIRE_MESSAGE(ls.ok(), ls.message());
  CHECK(model->info().architecture == ck.config().architecture);
  std::unique_ptr<vitint::Session> session;
  vitint::SessionOptions so;
  so.threads = threads;
  so.max_batch = 3;
  REQUIRE(vitint::Session::create(model, so, &session).ok());
  const auto want = timm_logits(name);
  // The three images as one batch, and each alone: the same logits.
  std::vector<uint8_t> batch;
  for (int k = 0; k < 3; ++k) {
    const std::vector<uint8_t> img = image(k, size);
    batch.insert(batch.end(), img.begin(), img.end());
  }
  std::vector<float> together(30);
  REQUIRE(session->run(batch.data(), 3, together.data()).ok());
  double worst_cos = 1, max_dev = 0, max_logit = 0;
  for (int k = 0; k < 3; ++k) {
    std::vector<float> got(10);
    REQUIRE(session->run(image(k, size).data(), 1, got.data()).ok());
    CHECK(std::equal(got.begin(), got.end(), together.begin() + 10 * k));
    const auto& t = want[static_cast<size_t>(k)];
    double dot = 0, n1 = 0, n2 = 0;
    for (size_t j = 0; j < 10; ++j) {
      dot += double(got[j]) * t[j];
      n1 += double(got[j]) * got[j];
      n2 += double(t[j]) * t[j];
      max_dev = std::max(max_dev, std::abs(double(got[j]) - t[j]));
      max_logit = std::max(max_logit, std::abs(double(t[j])));
    }
    worst_cos = std::min(worst_cos, dot / std::sqrt(n1 * n2));
    // The top class where timm's is not a near-tie (random weights: vit_gap's
    // third image has its top two 0.003 apart, below the engine's deviation).
    std::vector<float> sorted = t;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    if (sorted[0] - sorted[1] >= 0.01f) CHECK(argmax(got) == argmax(t));
  }
  MESSAGE(std::string(name) << ", integer engine, " << threads << " thread(s): lowest cosine of the logits with timm's "
                            << worst_cos << ", max |logit - timm| " << max_dev << " (largest |logit| " << max_logit
                            << ")");
  CHECK(worst_cos > 0.98);
  CHECK(max_dev < 0.15 * max_logit);  // measured 0.042 (DeiT III) and 0.038 (distilled) of it
  // Every kernel path this CPU has gives the same logits.
  for (vitint::kernels::Isa isa : vitint::kernels::kAllIsas) {
    if (!vitint::kernels::isa_supported(isa)) continue;
    CAPTURE(vitint::kernels::isa_name(isa));
    vitint::LoadOptions lo;
    lo.isa = vitint::kernels::isa_name(isa);
    std::shared_ptr<const vitint::Model> m;
    REQUIRE(vitint::Model::load(path, lo, &m).ok());
    std::unique_ptr<vitint::Session> s;
    REQUIRE(vitint::Session::create(m, so, &s).ok());
    std::vector<float> path_logits(30);
    REQUIRE(s->run(batch.data(), 3, path_logits.data()).ok());
    CHECK(path_logits == together);
  }
}

// The fixture converted once (calibrated on other images of its family, k =
// 3..8, not on the three it is compared on) and run by the integer engine
// with 1 and 2 threads; returns the model file. (Synthetic smooth noise, far
// from these patterns, leaves the activation ranges too narrow: cosine 0.88.)
std::vector<uint8_t> check_integer(const char* name) {
  const vc::Checkpoint ck = load(name);
  std::vector<std::vector<uint8_t>> calib;
  for (int k = 3; k < 9; ++k) calib.push_back(image(k, ck.config().image_size));
  vitint::format::Writer w;
  vc::convert_in_process(ck, calib, vc::Recipe{}, "synthetic", &w);
  std::vector<uint8_t> bytes = w.to_bytes();
  const vitint::test::TempFile file(bytes);
  for (int threads : {1, 2}) check_engine(name, ck, file.path, threads);
  return bytes;
}

}  // namespace

TEST_CASE("DeiT III: the checkpoint becomes a plain ViT and the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kDeit3);
  const vc::VitConfig& c = ck.config();
  CHECK(c.architecture == "deit3_small_patch16_224");
  CHECK(c.no_embed_class);
  CHECK(c.layer_scale);
  CHECK(c.embed_dim == 32);
  CHECK(c.depth == 2);
  CHECK(c.num_classes == 10);
  // The class token's position row is zero; the gammas are folded away.
  const vc::Tensor& pos = ck.get("pos_embed");
  REQUIRE(pos.shape == std::vector<int64_t>{1, 197, 32});
  CHECK(std::all_of(pos.data.begin(), pos.data.begin() + 32, [](float v) { return v == 0.0f; }));
  CHECK(std::any_of(pos.data.begin() + 32, pos.data.begin() + 64, [](float v) { return v != 0.0f; }));
  CHECK_THROWS_AS(ck.get("blocks.0.ls1.gamma"), vitint::Error);
  check_reference(kDeit3);
}

TEST_CASE("DeiT III: converted and run by the integer engine") {
  check_integer(kDeit3);
}

TEST_CASE("distilled DeiT: two prefix tokens, two heads; the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kDistilled);
  const vc::VitConfig& c = ck.config();
  CHECK(c.architecture == "deit_tiny_distilled_patch16_224");
  CHECK(c.distilled);
  CHECK(c.prefix_tokens() == 2);
  CHECK(c.num_tokens() == 198);
  CHECK(ck.get("head_dist.weight").shape == std::vector<int64_t>{10, 32});
  check_reference(kDistilled);
}

TEST_CASE("distilled DeiT: converted and run by the integer engine") {
  check_integer(kDistilled);
}

TEST_CASE("CLIP ViT: pre-norm and eps 1e-5 from the architecture name; the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kClip);
  const vc::VitConfig& c = ck.config();
  CHECK(c.architecture == "vit_base_patch16_clip_224");
  CHECK(c.pre_norm);
  CHECK(c.ln_eps == 1e-5f);
  CHECK(c.embed_dim == 32);  // model_args over the name's ViT-B shape
  CHECK(ck.get("norm_pre.weight").shape == std::vector<int64_t>{32});
  check_reference(kClip);
}

TEST_CASE("CLIP ViT: converted and run by the integer engine") {
  check_integer(kClip);
}

TEST_CASE("CLIP ViT with QuickGELU: from the name; the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kClipQuickGelu);
  CHECK(ck.config().architecture == "vit_base_patch16_clip_quickgelu_224");
  CHECK(ck.config().quick_gelu);
  CHECK(ck.config().pre_norm);
  check_reference(kClipQuickGelu);
}

TEST_CASE("CLIP ViT with QuickGELU: converted (its own table) and run by the integer engine") {
  // The file holds QuickGELU's table, not GELU's (they differ by up to 0.02, near x = +-2.3).
  const auto file = vitint::format::Reader::from_bytes(check_integer(kClipQuickGelu), "quickgelu");
  const auto& t = file->tensor("gelu_table");
  const auto* table = static_cast<const int16_t*>(t.data);
  const std::vector<int16_t> quick = vitint::kernels::quick_gelu_table(), gelu = vitint::kernels::gelu_table();
  CHECK(std::equal(quick.begin(), quick.end(), table));
  CHECK(quick != gelu);
}

TEST_CASE("ViT with register tokens and average pooling: the layout from the name; the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kRegGap);
  const vc::VitConfig& c = ck.config();
  CHECK(c.architecture == "vit_medium_patch16_reg4_gap_256");
  CHECK_FALSE(c.class_token);
  CHECK(c.reg_tokens == 4);
  CHECK(c.avg_pool);
  CHECK(c.image_size == 256);
  CHECK(c.prefix_tokens() == 4);
  CHECK(c.num_tokens() == 260);
  // no_embed_class: zero position rows for the register tokens; LayerScale folded.
  const vc::Tensor& pos = ck.get("pos_embed");
  REQUIRE(pos.shape == std::vector<int64_t>{1, 260, 32});
  CHECK(std::all_of(pos.data.begin(), pos.data.begin() + 4 * 32, [](float v) { return v == 0.0f; }));
  CHECK_THROWS_AS(ck.get("blocks.0.ls1.gamma"), vitint::Error);
  check_reference(kRegGap);
}

TEST_CASE("ViT with register tokens and average pooling: converted and run by the integer engine") {
  check_integer(kRegGap);
}

TEST_CASE("ViT pooled after its final norm: the layout from the name; the FP32 reference matches timm") {
  const vc::Checkpoint ck = load(kGap);
  const vc::VitConfig& c = ck.config();
  CHECK(c.architecture == "vit_medium_patch16_gap_256");
  CHECK_FALSE(c.class_token);
  CHECK(c.reg_tokens == 0);
  CHECK(c.avg_pool);
  CHECK_FALSE(c.fc_norm);
  CHECK_FALSE(c.qkv_bias);
  CHECK(c.num_tokens() == 256);
  CHECK(ck.get("norm.weight").shape == std::vector<int64_t>{32});
  check_reference(kGap);
}

TEST_CASE("ViT pooled after its final norm: converted and run by the integer engine") {
  check_integer(kGap);
}
