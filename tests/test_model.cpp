// Public API behaviour and bad-input handling of Model / Session.
#include <doctest/doctest.h>

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "temp_files.h"
#include "tiny_model.h"
#include "vitint/vitint.h"

namespace {

using vitint::test::TempFile;

const std::vector<uint8_t>& model_bytes() {
  static const std::vector<uint8_t> bytes = vitint::test::tiny_model_bytes();
  return bytes;
}

vitint::Status load(const std::vector<uint8_t>& bytes, std::shared_ptr<const vitint::Model>* m) {
  TempFile f(bytes);
  return vitint::Model::load(f.path, {}, m);
}

}  // namespace

TEST_CASE("model: a converted model loads, describes itself and classifies") {
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status st = load(model_bytes(), &model);
  REQUIRE_MESSAGE(st.ok(), st.message());
  const vitint::ModelInfo& info = model->info();
  CHECK(info.architecture == "deit_tiny_patch16_224");
  CHECK(info.depth == 12);
  CHECK(info.embed_dim == 192);
  CHECK(info.num_classes == 1000);
  CHECK(info.attention_bits == 8);
  CHECK(info.recipe.find("minmax") != std::string::npos);

  std::unique_ptr<vitint::Session> session;
  REQUIRE(vitint::Session::create(model, {}, &session).ok());
  vitint::Image img;
  img.width = 300;
  img.height = 200;
  img.rgb = vitint::test::synthetic_images(1, 300, 3)[0];
  img.rgb.resize(300 * 200 * 3);
  std::vector<vitint::Prediction> preds;
  const vitint::Status cs = session->classify(img, 5, &preds);
  REQUIRE_MESSAGE(cs.ok(), cs.message());
  REQUIRE(preds.size() == 5);
  for (size_t i = 1; i < preds.size(); ++i) CHECK(preds[i - 1].logit >= preds[i].logit);
  CHECK(preds[0].probability > 0.0f);
  CHECK(preds[0].probability <= 1.0f);
}

TEST_CASE("model: missing, truncated and corrupted files are refused with a message") {
  std::shared_ptr<const vitint::Model> model;
  vitint::Status st = vitint::Model::load("/nonexistent/model.vti", {}, &model);
  CHECK_FALSE(st.ok());
  CHECK(st.message().find("/nonexistent/model.vti") != std::string::npos);

  const auto& bytes = model_bytes();
  for (size_t len : {size_t{0}, size_t{16}, size_t{200}, bytes.size() / 2, bytes.size() - 1}) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len));
    st = load(cut, &model);
    CHECK_FALSE(st.ok());
    CHECK_MESSAGE(!st.message().empty(), "length ", len);
  }
  for (size_t pos : {size_t{9}, size_t{130}, bytes.size() / 3, bytes.size() - 5}) {
    std::vector<uint8_t> bad = bytes;
    bad[pos] ^= 0x10;
    st = load(bad, &model);
    CHECK_FALSE(st.ok());
    CHECK_MESSAGE(st.message().find("model file") != std::string::npos, st.message());
  }
}

namespace {

// Rewrites the tiny model with edited metadata and tensors (edit_tensor may
// skip a tensor by returning false, or change its view), then loads it and
// expects an error whose message contains `expect`.
void expect_rejected(const std::function<void(nlohmann::json&)>& edit_meta,
                     const std::function<bool(vitint::format::TensorView&)>& edit_tensor, const std::string& expect) {
  const auto src = vitint::format::Reader::from_bytes(model_bytes(), "tiny");
  auto meta = src->metadata();
  edit_meta(meta);
  vitint::format::Writer w;
  w.set_metadata(meta);
  for (vitint::format::TensorView t : src->tensors())
    if (edit_tensor(t)) w.add_tensor(t.name, t.dtype, t.shape, t.data, t.nbytes);
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status st = load(w.to_bytes(), &model);
  CHECK_FALSE(st.ok());
  CHECK_MESSAGE(st.message().find(expect) != std::string::npos, st.message());
}
const auto kSameMeta = [](nlohmann::json&) {};
const auto kSameTensors = [](vitint::format::TensorView&) { return true; };

}  // namespace

TEST_CASE("model: a file missing a tensor names it") {
  expect_rejected(kSameMeta, [](vitint::format::TensorView& t) { return t.name != "blocks.5.fc2.skip_mult"; },
                  "blocks.5.fc2.skip_mult");
}

TEST_CASE("model: a mis-shaped tensor and bad metadata values are named") {
  expect_rejected(kSameMeta,
                  [](vitint::format::TensorView& t) {
                    if (t.name == "blocks.0.qkv.bias") {
                      t.shape = {t.shape[0] - 1};
                      t.nbytes -= 4;
                    }
                    return true;
                  },
                  "blocks.0.qkv.bias");
  expect_rejected([](nlohmann::json& m) { m["quant"]["blocks"][3]["attn"]["to_exp_shift"] = 99; }, kSameTensors,
                  "quant.blocks[3].attn.to_exp_shift");
  expect_rejected([](nlohmann::json& m) { m["family"] = "swin"; }, kSameTensors, "swin");
  expect_rejected([](nlohmann::json& m) { m["hparams"].erase("depth"); }, kSameTensors, "hparams.depth");
  expect_rejected([](nlohmann::json& m) { m["family_revision"] = 3; }, kSameTensors,
                  "family_revision 3 is newer than this libvitint reads (2)");
  expect_rejected([](nlohmann::json& m) { m["hparams"]["prefix_tokens"] = 2; }, kSameTensors,
                  "hparams.prefix_tokens 2 needs family_revision 2");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 2;
        m["hparams"]["prefix_tokens"] = 2;
      },
      kSameTensors, "'dist'");
}

TEST_CASE("session: bad arguments are refused, not crashed on") {
  std::shared_ptr<const vitint::Model> model;
  REQUIRE(load(model_bytes(), &model).ok());
  std::unique_ptr<vitint::Session> session;
  CHECK_FALSE(vitint::Session::create(nullptr, {}, &session).ok());
  vitint::SessionOptions bad;
  bad.max_batch = 0;
  CHECK_FALSE(vitint::Session::create(model, bad, &session).ok());
  REQUIRE(vitint::Session::create(model, {}, &session).ok());
  std::vector<float> logits(1000);
  std::vector<uint8_t> img(224 * 224 * 3, 100);
  CHECK_FALSE(session->run(img.data(), 2, logits.data()).ok());  // max_batch is 1
  CHECK_FALSE(session->run(nullptr, 1, logits.data()).ok());
  vitint::Image empty;
  std::vector<vitint::Prediction> preds;
  const vitint::Status st = session->classify(empty, 5, &preds);
  CHECK_FALSE(st.ok());
  CHECK(!st.message().empty());
  std::shared_ptr<const vitint::Model> m2;
  vitint::LoadOptions lo;
  lo.isa = "sse9";
  TempFile f(model_bytes());
  const vitint::Status ls = vitint::Model::load(f.path, lo, &m2);
  CHECK_FALSE(ls.ok());
  CHECK(ls.message().find("sse9") != std::string::npos);
}
