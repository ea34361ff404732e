#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "converter/checkpoint.h"
#include "converter/npy.h"
#include "converter/reference.h"
#include "safetensors_files.h"
#include "shared_data.h"
#include "temp_files.h"
#include "vitint/error.h"
#include "vitint/image.h"

using vitint::convert::Checkpoint;
using vitint::convert::Observer;
using vitint::convert::ReferenceModel;
using vitint::convert::Site;

namespace {

std::vector<std::string> val_files() {
  std::ifstream in(vitint::test::val_dir() + "/val.txt");
  REQUIRE(in.good());
  std::vector<std::string> files;
  std::string file;
  int label = 0;
  while (in >> file >> label) files.push_back(file);
  REQUIRE(files.size() == 1300);
  return files;
}

std::vector<uint8_t> preprocessed(const Checkpoint& ck, const std::string& file) {
  const auto& c = ck.config();
  const vitint::Image img = vitint::load_image(vitint::test::val_dir() + "/" + file);
  return vitint::preprocess(img, c.image_size, c.crop_pct, c.interpolation).rgb;
}

size_t argmax(const float* v, size_t n) { return static_cast<size_t>(std::max_element(v, v + n) - v); }

// Every 26th image: 50 images spread over the whole file.
constexpr int kSubset = 50;
constexpr int kStride = 26;

// Max |logit - timm| over these 50 images, measured: 0.016 (DeiT-T) and
// 0.024 (ViT-T) when JPEGs decode exactly as PIL does (libjpeg-turbo build),
// 0.25 and 0.39 with stb_image's JPEG decoder. The FP32 arithmetic itself
// contributes ~1e-5 (checked against a float64 forward); the rest is input
// pixels. Bounds: about twice the measurement.
constexpr double kMaxDeviationPilPixels = 0.05;
constexpr double kMaxDeviationStbPixels = 0.8;

// Whether this build's JPEG decoder reproduces PIL's pixels (hash of PIL's
// decode of one validation image).
bool jpeg_decoder_matches_pil() {
  return vitint::test::fnv1a(vitint::load_image(vitint::test::val_dir() + "/" + vitint::test::kPilProbeImage).rgb) ==
         vitint::test::kPilProbeHash;
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

void compare_with_timm(const char* model_name) {
  const Checkpoint ck = Checkpoint::load(vitint::test::model_dir(model_name));
  const ReferenceModel model(ck);
  const auto ref = vitint::convert::read_npy_f32(vitint::test::val_dir() + "/timm_fp32_logits/" +
                                                 model_name + ".npy");
  REQUIRE(ref.shape == std::vector<int64_t>{1300, 1000});
  const auto files = val_files();
  const bool pil_pixels = jpeg_decoder_matches_pil();
  const double bound = pil_pixels ? kMaxDeviationPilPixels : kMaxDeviationStbPixels;
  double max_dev = 0, sum_dev = 0, seconds = 0;
  int agree = 0;
  for (int i = 0; i < kSubset; ++i) {
    const size_t row = static_cast<size_t>(i * kStride);
    const auto image = preprocessed(ck, files[row]);
    const double t0 = thread_cpu_seconds();  // CPU time: the machine is shared
    const std::vector<float> logits = model.forward(image.data());
    seconds += thread_cpu_seconds() - t0;
    REQUIRE(logits.size() == 1000);
    const float* expect = ref.data.data() + row * 1000;
    double dev = 0;
    for (size_t j = 0; j < 1000; ++j) dev = std::max(dev, std::abs(double(logits[j]) - expect[j]));
    max_dev = std::max(max_dev, dev);
    sum_dev += dev;
    const bool same = argmax(logits.data(), 1000) == argmax(expect, 1000);
    agree += same;
    CHECK_MESSAGE(same, files[row] << ": top-1 " << argmax(logits.data(), 1000) << " vs timm "
                                    << argmax(expect, 1000));
  }
  MESSAGE(std::string(model_name) << " (" << (pil_pixels ? "PIL-exact" : "stb_image")
                                  << " JPEG decoding): top-1 agreement " << agree << "/" << kSubset
                                  << ", max |logit - timm| " << max_dev << " (mean of per-image max "
                                  << sum_dev / kSubset << "), forward " << 1000.0 * seconds / kSubset
                                  << " ms CPU/image");
  CHECK(agree == kSubset);
  CHECK(max_dev < bound);
}

using vitint::test::from_bf16;
using vitint::test::from_f16;
using vitint::test::to_bf16;
using vitint::test::to_f16;

// A copy of a real checkpoint with every tensor stored as `dtype` (F16 or
// BF16), as model.half() / model.bfloat16() and save_file would write it.
struct HalfCheckpoint {
  vitint::test::TempDir tmp;
  HalfCheckpoint(const std::string& model_name, const std::string& dtype, uint16_t (*encode)(float)) {
    const std::string src = vitint::test::model_dir(model_name);
    const auto file = vitint::test::SafetensorsFile::parse(vitint::test::read_text(src + "/model.safetensors"));
    std::vector<vitint::test::Tensor16> tensors;
    for (const auto& [name, info] : file.header.items()) {
      if (name == "__metadata__") continue;
      REQUIRE(info["dtype"] == "F32");
      const uint64_t begin = info["data_offsets"][0], end = info["data_offsets"][1];
      vitint::test::Tensor16 t{name, info["shape"], {}};
      for (uint64_t b = begin; b < end; b += 4) {
        float f;
        std::memcpy(&f, file.data.data() + b, sizeof f);
        t.codes.push_back(encode(f));
      }
      tensors.push_back(std::move(t));
    }
    vitint::test::write_safetensors(tmp.file("model.safetensors"), dtype, tensors);
    std::ofstream(tmp.file("config.json"), std::ios::binary) << vitint::test::read_text(src + "/config.json");
  }
};

struct RecordingObserver : Observer {
  struct Call {
    Site site;
    int block, rows, cols;
    std::vector<float> data;
  };
  std::vector<Call> calls;
  void observe(Site site, int block, const float* data, int rows, int cols) override {
    calls.push_back({site, block, rows, cols,
                     std::vector<float>(data, data + static_cast<size_t>(rows) * static_cast<size_t>(cols))});
  }
  const Call& find(Site site, int block) const {
    for (const auto& c : calls)
      if (c.site == site && c.block == block) return c;
    FAIL("site not observed");
    return calls.front();
  }
};

}  // namespace

TEST_CASE("reference: DeiT-Tiny matches timm FP32 logits") { compare_with_timm(vitint::test::kDeitTiny); }

TEST_CASE("reference: ViT-Tiny augreg matches timm FP32 logits") { compare_with_timm(vitint::test::kVitTiny); }

TEST_CASE("reference: observer sites, shapes and layouts") {
  const Checkpoint ck = Checkpoint::random("deit_tiny_patch16_224", 3);
  const ReferenceModel model(ck);
  const auto image = preprocessed(ck, "ILSVRC2012_val_00000347.JPEG");
  RecordingObserver obs;
  const auto logits = model.forward(image.data(), &obs);
  const auto plain = model.forward(image.data());
  CHECK(logits == plain);  // observing changes nothing

  const int N = 197, D = 192, H = 768, heads = 3, dh = 64, depth = 12;
  REQUIRE(obs.calls.size() == static_cast<size_t>(11 * depth + 2));
  const std::map<Site, std::pair<int, int>> shapes = {
      {Site::kBlockInput, {N, D}}, {Site::kLn1Out, {N, D}},         {Site::kQ, {N, D}},
      {Site::kK, {N, D}},          {Site::kV, {N, D}},              {Site::kAttnLogits, {heads * N, N}},
      {Site::kAttnOut, {N, D}},    {Site::kBlockMid, {N, D}},       {Site::kLn2Out, {N, D}},
      {Site::kFc1Out, {N, H}},     {Site::kGeluOut, {N, H}},        {Site::kFinalNormIn, {N, D}},
      {Site::kHeadIn, {1, D}}};
  for (const auto& c : obs.calls) {
    CAPTURE(static_cast<int>(c.site));
    CHECK(c.rows == shapes.at(c.site).first);
    CHECK(c.cols == shapes.at(c.site).second);
    if (c.site == Site::kFinalNormIn || c.site == Site::kHeadIn)
      CHECK(c.block == depth);
    else
      CHECK((c.block >= 0 && c.block < depth));
    CHECK(std::all_of(c.data.begin(), c.data.end(), [](float v) { return std::isfinite(v); }));
  }

  // Logits are head-major rows of q_h k_h^T / sqrt(dh).
  const auto& q = obs.find(Site::kQ, 4).data;
  const auto& k = obs.find(Site::kK, 4).data;
  const auto& lg = obs.find(Site::kAttnLogits, 4).data;
  for (int h : {0, 2})
    for (int i : {0, 5, 196})
      for (int j : {0, 77}) {
        double dot = 0;
        for (int e = 0; e < dh; ++e)
          dot += double(q[static_cast<size_t>(i * D + h * dh + e)]) * k[static_cast<size_t>(j * D + h * dh + e)];
        CHECK(lg[static_cast<size_t>((h * N + i) * N + j)] == doctest::Approx(dot / 8.0).epsilon(1e-4).scale(1e-3));
      }
  // GELU output follows from the fc1 output.
  const auto& f = obs.find(Site::kFc1Out, 7).data;
  const auto& g = obs.find(Site::kGeluOut, 7).data;
  for (size_t i = 0; i < f.size(); i += 997)
    CHECK(g[i] == doctest::Approx(0.5 * f[i] * (1 + std::erf(f[i] / std::sqrt(2.0)))).epsilon(1e-5).scale(1e-6));
  // The head input is the final LayerNorm of the class-token row only.
  const auto& fin = obs.find(Site::kFinalNormIn, depth).data;
  const auto& head_in = obs.find(Site::kHeadIn, depth).data;
  double mean = 0, var = 0;
  for (int e = 0; e < D; ++e) mean += fin[static_cast<size_t>(e)];
  mean /= D;
  for (int e = 0; e < D; ++e) var += (fin[static_cast<size_t>(e)] - mean) * (fin[static_cast<size_t>(e)] - mean);
  var /= D;
  const auto& nw = ck.get("norm.weight").data;
  const auto& nb = ck.get("norm.bias").data;
  for (size_t e = 0; e < static_cast<size_t>(D); e += 17)
    CHECK(head_in[e] == doctest::Approx((fin[e] - mean) / std::sqrt(var + 1e-6) * nw[e] + nb[e]).epsilon(1e-4));
  // The next block's input is this block's mid-stream plus the MLP branch.
  CHECK(obs.find(Site::kBlockInput, 1).data != obs.find(Site::kBlockMid, 0).data);
}

TEST_CASE("reference: forward is thread-safe") {
  const Checkpoint ck = Checkpoint::random("deit_tiny_patch16_224", 11);
  const ReferenceModel model(ck);
  const auto files = val_files();
  std::vector<std::vector<uint8_t>> images;
  for (int i = 0; i < 4; ++i) images.push_back(preprocessed(ck, files[static_cast<size_t>(i * 300)]));
  std::vector<std::vector<float>> serial, parallel(images.size());
  for (const auto& im : images) serial.push_back(model.forward(im.data()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < images.size(); ++i)
    threads.emplace_back([&, i] { parallel[i] = model.forward(images[i].data()); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < images.size(); ++i) CHECK(serial[i] == parallel[i]);
}

TEST_CASE("reference: random DeiT-Small gives finite, spread logits") {
  const Checkpoint ck = Checkpoint::random("deit_small_patch16_224", 5);
  const ReferenceModel model(ck);
  const auto image = preprocessed(ck, "ILSVRC2012_val_00000347.JPEG");
  const auto logits = model.forward(image.data());
  REQUIRE(logits.size() == 1000);
  double sq = 0;
  for (float v : logits) {
    REQUIRE(std::isfinite(v));
    sq += double(v) * v;
  }
  const double rms = std::sqrt(sq / 1000);
  MESSAGE("random deit_small logit rms " << rms);
  CHECK(rms > 1e-3);
  CHECK(rms < 100);
}

// Checkpoints saved in half precision: every value widens exactly to the
// value of its 16-bit code, and the FP32 reference on those weights still
// classifies like timm's FP32 model.
TEST_CASE("reference: DeiT-Tiny saved in F16 and BF16 loads exactly and matches timm's top-1") {
  const Checkpoint f32 = Checkpoint::load(vitint::test::model_dir(vitint::test::kDeitTiny));
  const auto ref = vitint::convert::read_npy_f32(vitint::test::val_dir() + "/timm_fp32_logits/" +
                                                 vitint::test::kDeitTiny + ".npy");
  const auto files = val_files();
  struct Case {
    const char* dtype;
    uint16_t (*encode)(float);
    float (*decode)(uint16_t);
    int min_agree;  // of kSubset; measured 50 and 50
  };
  for (const Case& c : {Case{"F16", to_f16, from_f16, 50}, Case{"BF16", to_bf16, from_bf16, 49}}) {
    const std::string dtype = c.dtype;
    CAPTURE(dtype);
    const HalfCheckpoint half(vitint::test::kDeitTiny, c.dtype, c.encode);
    const Checkpoint ck = Checkpoint::load(half.tmp.path);
    REQUIRE(ck.tensors().size() == f32.tensors().size());
    size_t mismatches = 0, changed = 0;
    for (const auto& [name, t] : f32.tensors()) {
      const auto& h = ck.get(name);
      REQUIRE(h.shape == t.shape);
      for (size_t i = 0; i < t.data.size(); ++i) {
        mismatches += h.data[i] != c.decode(c.encode(t.data[i]));
        changed += h.data[i] != t.data[i];
      }
    }
    CHECK(mismatches == 0);
    CHECK(changed > 0);  // the weights really went through 16 bits
    const ReferenceModel model(ck);
    int agree = 0;
    for (int i = 0; i < kSubset; ++i) {
      const size_t row = static_cast<size_t>(i * kStride);
      const std::vector<float> logits = model.forward(preprocessed(ck, files[row]).data());
      agree += argmax(logits.data(), 1000) == argmax(ref.data.data() + row * 1000, 1000);
    }
    MESSAGE(dtype << " weights: top-1 agreement with timm FP32 " << agree << "/" << kSubset);
    CHECK(agree >= c.min_agree);
  }
}
