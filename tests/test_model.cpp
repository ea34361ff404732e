// Public API behaviour and bad-input handling of Model / Session.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "isas.h"
#include "json_leaves.h"
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

  // Model::preprocess gives Session::run the input that classify() uses: the
  // same logits, and a batch of two is two copies of them.
  const size_t bytes = static_cast<size_t>(info.image_size) * static_cast<size_t>(info.image_size) * 3;
  std::vector<uint8_t> input(2 * bytes);
  const vitint::Status ps = model->preprocess(img, input.data());
  REQUIRE_MESSAGE(ps.ok(), ps.message());
  std::copy(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(bytes), input.begin() + static_cast<std::ptrdiff_t>(bytes));
  vitint::SessionOptions two;
  two.max_batch = 2;
  std::unique_ptr<vitint::Session> batch_session;
  REQUIRE(vitint::Session::create(model, two, &batch_session).ok());
  std::vector<float> logits(2 * 1000);
  REQUIRE(batch_session->run(input.data(), 2, logits.data()).ok());
  for (const auto& p : preds) {
    CHECK(logits[static_cast<size_t>(p.class_index)] == p.logit);
    CHECK(logits[1000 + static_cast<size_t>(p.class_index)] == p.logit);
  }
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

// model_bytes(), read once.
const vitint::format::Reader& tiny_reader() {
  static const auto reader = vitint::format::Reader::from_bytes(model_bytes(), "tiny");
  return *reader;
}

// A tiny model (`src`, by default model_bytes()) rewritten with edited
// metadata and tensors (edit_tensor may drop a tensor by returning false, or
// change its view).
std::vector<uint8_t> rewrite(const std::function<void(nlohmann::json&)>& edit_meta,
                             const std::function<bool(vitint::format::TensorView&)>& edit_tensor,
                             const vitint::format::Reader& src = tiny_reader()) {
  auto meta = src.metadata();
  edit_meta(meta);
  vitint::format::Writer w;
  w.set_metadata(meta);
  for (vitint::format::TensorView t : src.tensors())
    if (edit_tensor(t)) w.add_tensor(t.name, t.dtype, t.shape, t.data, t.nbytes);
  return w.to_bytes();
}

// Loads the rewritten model and expects an error whose message contains `expect`.
void expect_rejected(const std::function<void(nlohmann::json&)>& edit_meta,
                     const std::function<bool(vitint::format::TensorView&)>& edit_tensor, const std::string& expect) {
  std::shared_ptr<const vitint::Model> model;
  const vitint::Status st = load(rewrite(edit_meta, edit_tensor), &model);
  CHECK_FALSE(st.ok());
  CHECK_MESSAGE(st.message().find(expect) != std::string::npos, st.message());
}
const auto kSameMeta = [](nlohmann::json&) {};
const auto kSameTensors = [](vitint::format::TensorView&) { return true; };

// An edit_tensor that sets element `index` of tensor `name` to `value`.
template <class T>
std::function<bool(vitint::format::TensorView&)> set_element(const std::string& name, size_t index, T value) {
  auto data = std::make_shared<std::vector<uint8_t>>();
  return [=](vitint::format::TensorView& t) {
    if (t.name == name) {
      const auto* b = static_cast<const uint8_t*>(t.data);
      data->assign(b, b + t.nbytes);
      std::memcpy(data->data() + index * sizeof(T), &value, sizeof(T));
      t.data = data->data();
    }
    return true;
  };
}

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
  // In range, but the dyadic would take logit differences outside int32.
  expect_rejected([](nlohmann::json& m) { m["quant"]["blocks"][3]["attn"]["to_exp_shift"] = 2; }, kSameTensors,
                  "'quant.blocks[3].attn' to_exp_mult * 2^-to_exp_shift");
  expect_rejected([](nlohmann::json& m) { m["family"] = "swin"; }, kSameTensors, "swin");
  expect_rejected([](nlohmann::json& m) { m["hparams"].erase("depth"); }, kSameTensors, "hparams.depth");
  expect_rejected([](nlohmann::json& m) { m["family_revision"] = 5; }, kSameTensors,
                  "family_revision 5 is newer than this libvitint reads (4)");
  // Revision 4: token layout and pooling.
  expect_rejected([](nlohmann::json& m) { m["hparams"]["pool"] = "avg"; }, kSameTensors,
                  "hparams.class_token, reg_tokens and pool need family_revision 4");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["pool"] = "max";
      },
      kSameTensors, "hparams.pool 'max' is neither 'token' nor 'avg'");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["class_token"] = 0;
      },
      kSameTensors, "without a class token (hparams.class_token 0) the pool must be 'avg'");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["reg_tokens"] = 2;
      },
      kSameTensors, "tensor 'reg' is missing");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["reg_tokens"] = 17;
      },
      kSameTensors, "hparams.reg_tokens");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["fc_norm"] = 0;
      },
      kSameTensors, "hparams.fc_norm 0 needs pool 'avg'");
  // Pooled after the final norm: its stream point and the pooling's requantization.
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 4;
        m["hparams"]["pool"] = "avg";
        m["hparams"]["fc_norm"] = 0;
      },
      kSameTensors, "quant.streams[25]");
  expect_rejected([](nlohmann::json& m) { m["hparams"]["pre_norm"] = 1; }, kSameTensors,
                  "hparams.pre_norm needs family_revision 3");
  // A pre-norm model needs norm_pre's parameters and the embedding's stream point.
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 3;
        m["hparams"]["pre_norm"] = 1;
      },
      kSameTensors, "quant.streams[25]");
  expect_rejected([](nlohmann::json& m) { m["hparams"]["prefix_tokens"] = 2; }, kSameTensors,
                  "hparams.prefix_tokens 2 needs family_revision 2");
  expect_rejected(
      [](nlohmann::json& m) {
        m["family_revision"] = 2;
        m["hparams"]["prefix_tokens"] = 2;
      },
      kSameTensors, "'dist'");
}

TEST_CASE("model: requantizations the 16-bit kernels cannot run are refused, naming the tensor") {
  // A ratio >= 1 (mult 2^30, shift 30: exactly 1) in qkv and in the attention output.
  expect_rejected(kSameMeta, set_element<int32_t>("blocks.2.qkv.shift", 5, 30), "requantization 'blocks.2.qkv' element 5");
  expect_rejected(kSameMeta, set_element<int32_t>("blocks.1.attn.out_shift", 0, 30),
                  "requantization 'blocks.1.attn.out' element 0");
  // Biases beyond the int32 headroom of the 16-bit kernels (|bias| <= 2^29).
  expect_rejected(kSameMeta, set_element<int32_t>("blocks.0.qkv.bias", 3, (1 << 29) + 1),
                  "tensor 'blocks.0.qkv.bias' element 3 (536870913) is outside [-2^29, 2^29]");
  expect_rejected(kSameMeta, set_element<int32_t>("blocks.4.fc1.bias", 9, -(1 << 29) - 1),
                  "tensor 'blocks.4.fc1.bias' element 9");
  // A GELU table whose spline leaves the kernels' bounds: a knot (x = -128 * 3)
  // far off the curve makes a slope of more than 127 per piece.
  expect_rejected(kSameMeta, set_element<int16_t>("gelu_table", 32768 - 128 * 3, int16_t{-300}),
                  "tensor 'gelu_table' is not a GELU-like activation");
}

TEST_CASE("model: the head's scales must be finite, and any int32 head bias gives finite logits") {
  for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), 1e30f}) {
    INFO("scale " << bad);
    expect_rejected(kSameMeta, set_element("head.scale", 7, bad), "tensor 'head.scale' element 7");
  }
  // acc + bias leaves int32 on one side or the other (the logit's sign shows
  // a wrapped sum; tools/sanitize.sh reports the overflow itself).
  for (const int32_t bias : {INT32_MAX, INT32_MIN}) {
    INFO("bias " << bias);
    std::shared_ptr<const vitint::Model> model;
    REQUIRE(load(rewrite(kSameMeta, set_element("head.bias", 3, bias)), &model).ok());
    std::unique_ptr<vitint::Session> session;
    REQUIRE(vitint::Session::create(model, {}, &session).ok());
    std::vector<float> logits(1000);
    std::vector<uint8_t> img(224 * 224 * 3, 100);
    REQUIRE(session->run(img.data(), 1, logits.data()).ok());
    CHECK(std::isfinite(logits[3]));
    CHECK((bias > 0 ? logits[3] > 0 : logits[3] < 0));
  }
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
  std::vector<vitint::Prediction> preds(3);  // a failed call leaves no predictions behind
  const vitint::Status st = session->classify(empty, 5, &preds);
  CHECK_FALSE(st.ok());
  CHECK(st.message().rfind("Session::classify: preprocess: invalid image (0x0", 0) == 0);
  CHECK(preds.empty());
  std::vector<uint8_t> input(224 * 224 * 3);
  CHECK(model->preprocess(empty, input.data()).message().rfind("Model::preprocess: preprocess: invalid image", 0) == 0);
  vitint::Image thin;
  thin.width = 1000;
  thin.height = 1;
  thin.rgb.assign(3000, 7);
  CHECK(model->preprocess(thin, input.data()).message() ==
        "Model::preprocess: preprocess: a 1000x1 image has an absurd aspect ratio");
  CHECK(model->preprocess(thin, nullptr).message() == "Model::preprocess: out must not be null");
  CHECK(session->top_k(nullptr, 5).empty());
  CHECK(session->top_k(logits.data(), 0).empty());
  CHECK(session->top_k(logits.data(), 5000).size() == 1000);
  CHECK(vitint::Session::create(model, {}, nullptr).message() == "Session::create: out must not be null");
  {
    TempFile f(model_bytes());
    CHECK(vitint::Model::load(f.path, {}, nullptr).message() == "Model::load: out must not be null");
  }
  std::shared_ptr<const vitint::Model> m2;
  vitint::LoadOptions lo;
  lo.isa = "sse9";
  TempFile f(model_bytes());
  const vitint::Status ls = vitint::Model::load(f.path, lo, &m2);
  CHECK_FALSE(ls.ok());
  CHECK(ls.message().find("sse9") != std::string::npos);
}

namespace {

// An integer at the edges of what the loader and the kernels must handle,
// or next to `original`.
int64_t edge_value(std::mt19937_64& rng, int64_t original) {
  static const int64_t kEdges[] = {0,       1,       -1,       2,          3,         7,         8,
                                   15,      16,      31,       32,         33,        62,        63,
                                   64,      127,     128,      255,        256,       32767,     32768,
                                   -32768,  65535,   1 << 24,  1 << 30,    INT32_MAX, INT32_MIN, int64_t{1} << 40,
                                   -(int64_t{1} << 40), int64_t{1} << 53, INT64_MAX, INT64_MIN};
  switch (rng() % 4) {
    case 0: return original + static_cast<int64_t>(rng() % 5) - 2;
    case 1: return -original;
    default: return kEdges[rng() % std::size(kEdges)];
  }
}

// Element i of a tensor's bytes set to v (floats: one of a few extreme
// values chosen by v).
void poke(vitint::format::DType dtype, std::vector<uint8_t>& data, size_t i, int64_t v) {
  auto put = [&](auto t) { std::memcpy(data.data() + i * sizeof(t), &t, sizeof(t)); };
  static const float kFloats[] = {0.0f, -0.0f, 1e-30f, 1e30f, -1e30f, std::numeric_limits<float>::infinity(),
                                  -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()};
  switch (dtype) {
    case vitint::format::DType::kU8: return put(static_cast<uint8_t>(v));
    case vitint::format::DType::kS8: return put(static_cast<int8_t>(v));
    case vitint::format::DType::kS16: return put(static_cast<int16_t>(v));
    case vitint::format::DType::kS32: return put(static_cast<int32_t>(v));
    case vitint::format::DType::kS64: return put(v);
    case vitint::format::DType::kF32: return put(kFloats[static_cast<uint64_t>(v) % std::size(kFloats)]);
  }
}

}  // namespace

namespace {

// `iterations` random edits of `source` (see the test case below).
void edit_load_and_run(const std::vector<uint8_t>& source, uint32_t seed, int iterations) {
  const auto src = vitint::format::Reader::from_bytes(source, "tiny");
  std::vector<std::string> leaves;  // the metadata's numbers
  vitint::test::json_leaves(src->metadata(), "", &leaves);
  const nlohmann::json& meta = src->metadata();
  leaves.erase(std::remove_if(leaves.begin(), leaves.end(),
                              [&](const std::string& at) { return !meta[nlohmann::json::json_pointer(at)].is_number(); }),
               leaves.end());
  REQUIRE(leaves.size() > 50);
  const size_t tensor_count = src->tensors().size();
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> image(224 * 224 * 3);
  for (auto& p : image) p = static_cast<uint8_t>(rng());
  int loaded = 0, refused = 0, compared = 0;
  for (int iter = 0; iter < iterations; ++iter) {
    // 1-3 edits, each a metadata integer or 1-4 elements of one tensor.
    std::string what;
    std::vector<std::pair<std::string, int64_t>> meta_edits;
    std::vector<size_t> tensor_edits;
    for (int e = 1 + static_cast<int>(rng() % 3); e > 0; --e) {
      if (rng() % 2 == 0) {
        meta_edits.emplace_back(leaves[rng() % leaves.size()], 0);
      } else {
        tensor_edits.push_back(rng() % tensor_count);
      }
    }
    std::vector<std::vector<uint8_t>> edited;  // data of the edited tensors
    edited.reserve(tensor_edits.size());
    size_t index = 0;
    const std::vector<uint8_t> bytes = rewrite(
        [&](nlohmann::json& m) {
          for (auto& [at, v] : meta_edits) {
            const nlohmann::json::json_pointer ptr(at);
            v = edge_value(rng, m[ptr].is_number_integer() ? m[ptr].get<int64_t>() : 1);
            m[ptr] = v;
            what += " metadata " + at + " = " + std::to_string(v) + ";";
          }
        },
        [&](vitint::format::TensorView& t) {
          if (std::count(tensor_edits.begin(), tensor_edits.end(), index++) > 0 && t.nbytes > 0) {
            const auto* b = static_cast<const uint8_t*>(t.data);
            edited.emplace_back(b, b + t.nbytes);
            const size_t count = t.nbytes / vitint::format::dtype_size(t.dtype);
            for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k)
              poke(t.dtype, edited.back(), rng() % count, edge_value(rng, 0));
            t.data = edited.back().data();
            what += " tensor " + t.name + ";";
          }
          return true;
        },
        *src);
    INFO("iteration " << iter << ":" << what);
    const TempFile file(bytes);
    std::shared_ptr<const vitint::Model> model;
    const vitint::Status st = vitint::Model::load(file.path, {}, &model);
    if (!st.ok()) {
      ++refused;
      CHECK_MESSAGE(st.message().rfind("model file ", 0) == 0, st.message());
      continue;
    }
    ++loaded;
    std::unique_ptr<vitint::Session> session;
    const vitint::Status cs = vitint::Session::create(model, {}, &session);
    REQUIRE_MESSAGE(cs.ok(), cs.message());
    REQUIRE(model->info().image_size == 224);
    std::vector<float> logits(static_cast<size_t>(model->info().num_classes));
    const vitint::Status rs = session->run(image.data(), 1, logits.data());
    REQUIRE_MESSAGE(rs.ok(), rs.message());
    CHECK(std::all_of(logits.begin(), logits.end(), [](float l) { return std::isfinite(l); }));
    // Every 8th model that runs also runs on every other kernel path of
    // this CPU: bit-identical logits on parameters far from a converter's.
    if (loaded % 8 == 1) {
      ++compared;
      for (const vitint::kernels::Isa isa : vitint::test::supported_isas()) {
        vitint::LoadOptions options;
        options.isa = vitint::kernels::isa_name(isa);
        if (options.isa == model->isa()) continue;
        INFO("kernel path " << options.isa);
        std::shared_ptr<const vitint::Model> other;
        REQUIRE(vitint::Model::load(file.path, options, &other).ok());
        std::unique_ptr<vitint::Session> s2;
        REQUIRE(vitint::Session::create(other, {}, &s2).ok());
        std::vector<float> l2(logits.size());
        REQUIRE(s2->run(image.data(), 1, l2.data()).ok());
        CHECK(std::memcmp(l2.data(), logits.data(), l2.size() * sizeof(float)) == 0);
      }
    }
  }
  MESSAGE(loaded << " edited models ran (" << compared << " on every kernel path), " << refused << " were refused");
  CHECK(loaded > iterations / 10);
  CHECK(refused > iterations / 10);
}

}  // namespace

// Files a converter bug or a hostile author could write: random metadata
// integers and tensor elements (edge values) behind valid checksums. Each is
// refused with a message, or loads and runs to finite logits (under
// tools/sanitize.sh also without undefined behaviour), the same on every
// kernel path (checked for every 8th; in longer runs of this loop 1,262
// edited 8-bit and 124 4-bit attention models ran bit-identical on all five
// paths; and with the pre-norm and pooled layouts, 400 edits each). Found the head's float scales unchecked (an infinite scale gave
// infinite logits), its int32 bias added in int32, and softmax dyadics that
// wrapped logits past int32 (undefined shifts in the reference i-exp).
TEST_CASE("model: edited values behind valid checksums are refused or run, never crash") {
  SUBCASE("8-bit attention") { edit_load_and_run(model_bytes(), 2026, 200); }
  SUBCASE("4-bit Log-Int-Softmax attention") {
    static const std::vector<uint8_t> lis = vitint::test::tiny_model_bytes(4);
    edit_load_and_run(lis, 2027, 200);
  }
  // The layouts of revisions 3 and 4: norm_pre; register tokens and average
  // pooling with fc_norm; pooling after the final norm.
  for (const char* arch : {"vit_tiny_patch16_clip_224", "vit_tiny_patch16_reg4_gap_224", "vit_tiny_patch16_gap_224"}) {
    SUBCASE(arch) { edit_load_and_run(vitint::test::random_model_bytes(arch, 7, 2), 2028, 80); }
  }
}
