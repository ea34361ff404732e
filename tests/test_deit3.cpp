// DeiT III (timm's deit3_*: position embedding without the class token,
// LayerScale) on a small random-weight model made with timm: the fixture
// tests/fixtures/deit3_random holds timm's config.json, model.safetensors
// (F16, as timm's save_for_hf wrote it) and timm's logits for three images
// (make.py there says how it was made).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "converter/calibrate.h"
#include "converter/checkpoint.h"
#include "converter/quantize.h"
#include "converter/reference.h"
#include "engine/src/format.h"
#include "temp_files.h"
#include "tiny_model.h"
#include "vitint/vitint.h"

namespace vc = vitint::convert;

namespace {

std::string fixture() { return std::string(VITINT_FIXTURES_DIR) + "/deit3_random"; }

// Input images of the fixture's family, 224 x 224 RGB (make.py's formula;
// timm's logits are for k = 0, 1, 2).
std::vector<uint8_t> image(int k) {
  std::vector<uint8_t> img(224 * 224 * 3);
  for (int y = 0; y < 224; ++y)
    for (int x = 0; x < 224; ++x)
      for (int c = 0; c < 3; ++c)
        img[static_cast<size_t>((y * 224 + x) * 3 + c)] =
            static_cast<uint8_t>((x * 7 + y * 13 + c * 101 + (x * y) % 17 + k * 59) % 256);
  return img;
}

std::vector<std::vector<float>> timm_logits() {
  std::ifstream in(fixture() + "/timm_logits.json");
  REQUIRE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  return j["logits"].get<std::vector<std::vector<float>>>();
}

size_t argmax(const std::vector<float>& v) { return static_cast<size_t>(std::max_element(v.begin(), v.end()) - v.begin()); }

}  // namespace

TEST_CASE("DeiT III: the checkpoint becomes a plain ViT and the FP32 reference matches timm") {
  const vc::Checkpoint ck = vc::Checkpoint::load(fixture());
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

  const vc::ReferenceModel model(ck);
  const auto want = timm_logits();
  REQUIRE(want.size() == 3);
  double max_dev = 0;
  for (int k = 0; k < 3; ++k) {
    const std::vector<float> got = model.forward(image(k).data());
    REQUIRE(got.size() == 10);
    for (size_t j = 0; j < 10; ++j) max_dev = std::max(max_dev, std::abs(double(got[j]) - want[static_cast<size_t>(k)][j]));
    CHECK(argmax(got) == argmax(want[static_cast<size_t>(k)]));
  }
  MESSAGE("DeiT III fixture: max |logit - timm| " << max_dev);
  CHECK(max_dev < 1e-4);  // float rounding only: the inputs are the same integers
}

TEST_CASE("DeiT III: converted and run by the integer engine") {
  const vc::Checkpoint ck = vc::Checkpoint::load(fixture());
  const vc::ReferenceModel ref(ck);
  // Calibrated on other images of the fixture's family (k = 3..8), not on
  // the three it is compared on. (Synthetic smooth noise, far from these
  // patterns, leaves the activation ranges too narrow: cosine 0.88.)
  std::vector<std::vector<uint8_t>> calib;
  for (int k = 3; k < 9; ++k) calib.push_back(image(k));
  vc::ConvertInfo info;
  info.calib_count = 6;
  info.calib_list = "synthetic";
  const vc::Calibration cal = vc::calibrate(ref, calib, info.recipe, false);
  vitint::format::Writer w;
  vc::quantize_vit(ck, cal, info, &w);
  const vitint::test::TempFile file(w.to_bytes());
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status ls = vitint::Model::load(file.path, {}, &model);
  REQUIRE_MESSAGE(ls.ok(), ls.message());
  CHECK(model->info().architecture == "deit3_small_patch16_224");
  std::unique_ptr<vitint::Session> session;
  REQUIRE(vitint::Session::create(model, {}, &session).ok());
  const auto want = timm_logits();
  double worst_cos = 1;
  for (int k = 0; k < 3; ++k) {
    std::vector<float> got(10);
    REQUIRE(session->run(image(k).data(), 1, got.data()).ok());
    const auto& t = want[static_cast<size_t>(k)];
    double dot = 0, n1 = 0, n2 = 0;
    for (size_t j = 0; j < 10; ++j) {
      dot += double(got[j]) * t[j];
      n1 += double(got[j]) * got[j];
      n2 += double(t[j]) * t[j];
    }
    worst_cos = std::min(worst_cos, dot / std::sqrt(n1 * n2));
    CHECK(argmax(got) == argmax(t));
  }
  MESSAGE("DeiT III fixture, integer engine: lowest cosine of the logits with timm's " << worst_cos);
  CHECK(worst_cos > 0.98);
}
