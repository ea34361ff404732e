#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "converter/checkpoint.h"
#include "converter/synthetic.h"
#include "json_leaves.h"
#include "safetensors_files.h"
#include "shared_data.h"
#include "temp_files.h"
#include "vitint/error.h"

using vitint::convert::Checkpoint;
using vitint::convert::VitConfig;
namespace fs = std::filesystem;

namespace {

std::string read_all(const fs::path& p) { return vitint::test::read_text(p.string()); }

void write_all(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary);
  out << s;
  REQUIRE(out.good());
}

// A scratch checkpoint directory in the temp dir: copies of the DeiT-Tiny
// files, optionally with the safetensors header or config edited.
struct ScratchCheckpoint {
  vitint::test::TempDir tmp;
  fs::path dir = tmp.path;
  ScratchCheckpoint() {
    const fs::path src = vitint::test::model_dir(vitint::test::kDeitTiny);
    write_all(dir / "config.json", read_all(src / "config.json"));
    write_all(dir / "model.safetensors", read_all(src / "model.safetensors"));
  }
  // fn(header, data) edits the safetensors file in place.
  void edit_safetensors(const std::function<void(nlohmann::json&, std::string&)>& fn) {
    auto file = vitint::test::SafetensorsFile::parse(read_all(dir / "model.safetensors"));
    fn(file.header, file.data);
    write_all(dir / "model.safetensors", file.bytes());
  }
  // fn(header) edits the header; the data section is then laid out anew in
  // the order of the offsets, so that an entry erased or added (with the
  // offsets of another's bytes) leaves it tiled as the format requires.
  void edit_header(const std::function<void(nlohmann::json&)>& fn) {
    edit_safetensors([&](nlohmann::json& header, std::string& data) {
      fn(header);
      std::vector<std::pair<std::vector<uint64_t>, std::string>> ranges;
      for (const auto& [name, info] : header.items())
        if (name != "__metadata__") ranges.emplace_back(info["data_offsets"].get<std::vector<uint64_t>>(), name);
      std::sort(ranges.begin(), ranges.end());
      std::string packed;
      for (const auto& [offsets, name] : ranges) {
        header[name]["data_offsets"] = {packed.size(), packed.size() + offsets[1] - offsets[0]};
        packed += data.substr(offsets[0], offsets[1] - offsets[0]);
      }
      data = packed;
    });
  }
  // Replaces the safetensors header with the text `header` (any bytes).
  void write_header_text(const std::string& header) {
    const auto file = vitint::test::SafetensorsFile::parse(read_all(dir / "model.safetensors"));
    std::string length(8, '\0');
    for (int i = 0; i < 8; ++i) length[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write_all(dir / "model.safetensors", length + header + file.data);
  }
  void edit_config(const std::function<void(nlohmann::json&)>& fn) {
    nlohmann::json cfg = nlohmann::json::parse(read_all(dir / "config.json"));
    fn(cfg);
    write_all(dir / "config.json", cfg.dump(2));
  }
  // The message of the Error that loading throws ("" if it loads).
  std::string load_error() const {
    try {
      Checkpoint::load(dir.string());
    } catch (const vitint::Error& e) {
      return e.what();
    }
    return "";
  }
};

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

void check_tiny_shapes(const Checkpoint& ck) {
  const VitConfig& c = ck.config();
  CHECK(c.depth == 12);
  CHECK(c.embed_dim == 192);
  CHECK(c.num_heads == 3);
  CHECK(c.head_dim() == 64);
  CHECK(c.mlp_hidden == 768);
  CHECK(c.patch_size == 16);
  CHECK(c.image_size == 224);
  CHECK(c.num_tokens() == 197);
  CHECK(c.num_classes == 1000);
  CHECK(c.qkv_bias);
  CHECK(c.interpolation == vitint::Interpolation::kBicubic);
  CHECK(ck.tensors().size() == 152);
  CHECK(ck.get("pos_embed").shape == std::vector<int64_t>{1, 197, 192});
  CHECK(ck.get("blocks.11.mlp.fc1.weight").shape == std::vector<int64_t>{768, 192});
  CHECK(ck.get("head.weight").numel() == 192000);
  CHECK_THROWS_AS(ck.get("dist_token"), vitint::Error);
}

}  // namespace

TEST_CASE("checkpoint: DeiT-Tiny loads") {
  const Checkpoint ck = Checkpoint::load(vitint::test::model_dir(vitint::test::kDeitTiny));
  check_tiny_shapes(ck);
  const VitConfig& c = ck.config();
  CHECK(c.architecture == "deit_tiny_patch16_224");
  CHECK(c.tag == "fb_in1k");
  CHECK(c.crop_pct == doctest::Approx(0.875));
  CHECK(c.mean[0] == doctest::Approx(0.485));
  CHECK(c.mean[2] == doctest::Approx(0.406));
  CHECK(c.std[1] == doctest::Approx(0.224));
  // The README says the LayerNorm parameters sit on a 2^-6 grid.
  const float w = ck.get("blocks.0.norm1.weight").data[0];
  CHECK(w * 64.0f == doctest::Approx(std::round(w * 64.0f)));
}

TEST_CASE("checkpoint: ViT-Tiny augreg loads") {
  const Checkpoint ck = Checkpoint::load(vitint::test::model_dir(vitint::test::kVitTiny));
  check_tiny_shapes(ck);
  const VitConfig& c = ck.config();
  CHECK(c.architecture == "vit_tiny_patch16_224");
  CHECK(c.tag == "augreg_in21k_ft_in1k");
  CHECK(c.crop_pct == doctest::Approx(0.9));
  for (int i = 0; i < 3; ++i) {
    CHECK(c.mean[static_cast<size_t>(i)] == 0.5f);
    CHECK(c.std[static_cast<size_t>(i)] == 0.5f);
  }
}

TEST_CASE("checkpoint: broken checkpoints give errors that name the tensor and the file") {
  SUBCASE("missing tensor") {
    ScratchCheckpoint s;
    s.edit_header([](nlohmann::json& h) { h.erase("blocks.5.attn.proj.bias"); });
    const std::string msg = s.load_error();
    CHECK(contains(msg, "missing tensor 'blocks.5.attn.proj.bias'"));
    CHECK(contains(msg, "[192]"));
    CHECK(contains(msg, "model.safetensors"));
  }
  SUBCASE("mis-shaped tensor") {
    ScratchCheckpoint s;
    s.edit_header([](nlohmann::json& h) { h["blocks.3.mlp.fc1.weight"]["shape"] = {192, 768}; });
    const std::string msg = s.load_error();
    CHECK(contains(msg, "'blocks.3.mlp.fc1.weight'"));
    CHECK(contains(msg, "[192, 768]"));
    CHECK(contains(msg, "expected [768, 192]"));
    CHECK(contains(msg, "model.safetensors"));
  }
  SUBCASE("unexpected tensor (distilled DeiT)") {
    ScratchCheckpoint s;
    s.edit_header([](nlohmann::json& h) {
      h["dist_token"] = {{"dtype", "F32"}, {"shape", {1, 1, 192}}, {"data_offsets", {0, 768}}};
    });
    const std::string msg = s.load_error();
    CHECK(contains(msg, "unexpected tensor 'dist_token'"));
    CHECK(contains(msg, "distilled"));
  }
  SUBCASE("offsets that do not match the shape") {
    ScratchCheckpoint s;
    s.edit_header([](nlohmann::json& h) { h["norm.bias"]["data_offsets"][1] = h["norm.bias"]["data_offsets"][0].get<uint64_t>() + 4; });
    CHECK(contains(s.load_error(), "'norm.bias'"));
  }
  SUBCASE("an unsupported dtype, and a 16-bit dtype whose offsets keep the F32 size") {
    const std::pair<const char*, const char*> cases[] = {
        {"F64", "dtype F64 is not supported (F32, F16 or BF16)"},
        {"BF16", "span 768 bytes but shape [1, 1, 192] in BF16 needs 384"}};
    for (const auto& [dtype, expected] : cases) {
      INFO("dtype " << dtype);
      ScratchCheckpoint s;
      s.edit_header([dtype = dtype](nlohmann::json& h) { h["cls_token"]["dtype"] = dtype; });
      const std::string msg = s.load_error();
      CHECK(contains(msg, "'cls_token'"));
      CHECK(contains(msg, expected));
    }
  }
  SUBCASE("NaN and infinite weights") {
    for (const uint32_t bits : {0x7fc00000u, 0xff800000u}) {
      ScratchCheckpoint s;
      s.edit_safetensors([bits](nlohmann::json& header, std::string& data) {
        const uint64_t at = header["blocks.3.mlp.fc1.bias"]["data_offsets"][0].get<uint64_t>() + 4 * 5;
        std::memcpy(&data[at], &bits, sizeof bits);  // little-endian host
      });
      const std::string msg = s.load_error();
      CHECK(contains(msg, "'blocks.3.mlp.fc1.bias': element 5 is " + std::string(bits == 0x7fc00000u ? "NaN" : "infinite")));
    }
  }
  SUBCASE("truncated file") {
    ScratchCheckpoint s;
    const std::string file = read_all(s.dir / "model.safetensors");
    write_all(s.dir / "model.safetensors", file.substr(0, file.size() / 2));
    const std::string msg = s.load_error();
    CHECK(contains(msg, "truncated"));
    CHECK(contains(msg, "tensor '"));
    CHECK(contains(msg, "model.safetensors"));
    // Cut inside the header itself.
    write_all(s.dir / "model.safetensors", file.substr(0, 1000));
    CHECK(contains(s.load_error(), "truncated"));
    write_all(s.dir / "model.safetensors", file.substr(0, 5));
    CHECK(contains(s.load_error(), "truncated"));
  }
  SUBCASE("config: unsupported models") {
    ScratchCheckpoint s;
    // A distilled name over a plain DeiT's tensors: the extra token and head are missing.
    s.edit_config([](nlohmann::json& c) { c["architecture"] = "deit_tiny_distilled_patch16_224"; });
    CHECK(contains(s.load_error(), "missing tensor 'dist_token' (expected shape [1, 1, 192])"));
    s.edit_config([](nlohmann::json& c) { c["architecture"] = "vit_tiny_distilled_patch16_224"; });
    CHECK(contains(s.load_error(), "only DeiT (deit_*) comes distilled"));
    s.edit_config([](nlohmann::json& c) {
      c["architecture"] = "deit_tiny_patch16_224";
      c["global_pool"] = "max";
    });
    CHECK(contains(s.load_error(), "global_pool is \"max\": only class-token (\"token\") and average (\"avg\")"));
    s.edit_config([](nlohmann::json& c) {
      c["global_pool"] = "token";
      c["model_args"]["class_token"] = false;
    });
    CHECK(contains(s.load_error(), "without a class token only average pooling"));
    s.edit_config([](nlohmann::json& c) {
      c["model_args"].erase("class_token");
      c["architecture"] = "swin_tiny_patch4_window7_224";
    });
    CHECK(contains(s.load_error(), "not supported"));
  }
  SUBCASE("config: hyper-parameters fall back to timm's for standard names") {
    ScratchCheckpoint s;
    s.edit_config([](nlohmann::json& c) { c.erase("model_args"); });
    CHECK(s.load_error().empty());
    // A config that disagrees with the weights is caught by the tensor check.
    s.edit_config([](nlohmann::json& c) { c["model_args"] = {{"depth", 11}}; });
    CHECK(contains(s.load_error(), "unexpected tensor 'blocks.11."));
  }
  SUBCASE("config: LayerScale and no_embed_class must match the tensors") {
    ScratchCheckpoint s;
    s.edit_config([](nlohmann::json& c) { c["model_args"]["init_values"] = 1e-5; });
    CHECK(contains(s.load_error(), "missing tensor 'blocks.0.ls1.gamma' (expected shape [192])"));
    s.edit_config([](nlohmann::json& c) { c["model_args"]["init_values"] = "small"; });
    CHECK(contains(s.load_error(), "model_args.init_values must be a number or null"));
    s.edit_config([](nlohmann::json& c) {
      c["model_args"]["init_values"] = nullptr;
      c["model_args"]["no_embed_class"] = true;
    });
    CHECK(contains(s.load_error(), "tensor 'pos_embed' has shape [1, 197, 192], expected [1, 196, 192]"));
    // deit3_* implies both, as in timm.
    s.edit_config([](nlohmann::json& c) {
      c["model_args"].erase("no_embed_class");
      c["model_args"].erase("init_values");
      c["architecture"] = "deit3_tiny_patch16_224";
    });
    const std::string msg = s.load_error();
    CHECK(contains(msg, "does not match deit3_tiny_patch16_224"));
    CHECK(contains(msg, "missing tensor 'blocks.0.ls1.gamma'"));
    CHECK(contains(msg, "; and 15 more"));  // 24 gammas and pos_embed, 10 listed
  }
  SUBCASE("config: pre-norm (CLIP) must match the tensors") {
    ScratchCheckpoint s;
    // model_args.pre_norm, or a vit_*_clip_* name: norm_pre, and no patch bias.
    s.edit_config([](nlohmann::json& c) { c["model_args"]["pre_norm"] = true; });
    std::string msg = s.load_error();
    CHECK(contains(msg, "missing tensor 'norm_pre.weight' (expected shape [192])"));
    CHECK(contains(msg, "unexpected tensor 'patch_embed.proj.bias'"));
    s.edit_config([](nlohmann::json& c) {
      c["model_args"].erase("pre_norm");
      c["architecture"] = "vit_tiny_patch16_clip_224";
    });
    CHECK(contains(s.load_error(), "missing tensor 'norm_pre.weight'"));
    s.edit_config([](nlohmann::json& c) { c["architecture"] = "vit_base_patch16_clip_quickgelu_224"; });
    CHECK(contains(s.load_error(), "missing tensor 'norm_pre.weight'"));
    s.edit_config([](nlohmann::json& c) { c["model_args"]["act_layer"] = "relu"; });
    CHECK(contains(s.load_error(), "model_args.act_layer is \"relu\": only \"gelu\" and \"quick_gelu\""));
    s.edit_config([](nlohmann::json& c) { c["model_args"].erase("act_layer"); });
    s.edit_config([](nlohmann::json& c) {
      c["architecture"] = "deit_tiny_patch16_224";
      c["model_args"]["pre_norm"] = "yes";
    });
    CHECK(contains(s.load_error(), "model_args.pre_norm"));
  }
  SUBCASE("config: token layout and pooling must match the tensors") {
    ScratchCheckpoint s;
    // Average pooling: fc_norm after the pooling instead of the final norm.
    s.edit_config([](nlohmann::json& c) { c["global_pool"] = "avg"; });
    std::string msg = s.load_error();
    CHECK(contains(msg, "missing tensor 'fc_norm.weight' (expected shape [192])"));
    CHECK(contains(msg, "unexpected tensor 'norm.weight'"));
    // Pooled after the final norm (fc_norm false): DeiT's own tensors.
    s.edit_config([](nlohmann::json& c) { c["model_args"]["fc_norm"] = false; });
    CHECK(s.load_error().empty());
    s.edit_config([](nlohmann::json& c) {
      c["global_pool"] = "token";
      c["model_args"]["fc_norm"] = true;
    });
    CHECK(contains(s.load_error(), "fc_norm with class-token pooling is not supported"));
    s.edit_config([](nlohmann::json& c) {
      c["model_args"].erase("fc_norm");
      c["model_args"]["reg_tokens"] = 4;
    });
    msg = s.load_error();
    CHECK(contains(msg, "missing tensor 'reg_token' (expected shape [1, 4, 192])"));
    CHECK(contains(msg, "tensor 'pos_embed' has shape [1, 197, 192], expected [1, 201, 192]"));
    s.edit_config([](nlohmann::json& c) { c["model_args"]["reg_tokens"] = 17; });
    CHECK(contains(s.load_error(), "model_args.reg_tokens must be in [0, 16]"));
    // The sbb names: no class token, registers, average pooling, LayerScale.
    s.edit_config([](nlohmann::json& c) {
      c["model_args"].erase("reg_tokens");
      c["architecture"] = "vit_tiny_patch16_reg4_gap_224";
      c["global_pool"] = "avg";
    });
    msg = s.load_error();
    CHECK(contains(msg, "does not match vit_tiny_patch16_reg4_gap_224"));
    CHECK(contains(msg, "missing tensor 'blocks.0.ls1.gamma'"));
    CHECK(contains(msg, "and 21 more"));  // 24 gammas, reg_token, fc_norm; cls_token, norm; pos_embed
    s.edit_config([](nlohmann::json& c) { c["architecture"] = "deit_tiny_distilled_patch16_224"; });
    CHECK(contains(s.load_error(), "a distilled DeiT with register tokens or average pooling is not supported"));
  }
  SUBCASE("missing files") {
    ScratchCheckpoint s;
    fs::remove(s.dir / "model.safetensors");
    CHECK(contains(s.load_error(), "model.safetensors"));
    fs::remove(s.dir / "config.json");
    CHECK(contains(s.load_error(), "config.json"));
  }
}

TEST_CASE("checkpoint: the tensors' bytes must tile the data section, and no name may repeat") {
  ScratchCheckpoint s;
  const std::string st = (s.dir / "model.safetensors").string();
  SUBCASE("a tensor aliasing another's bytes") {
    s.edit_safetensors([](nlohmann::json& h, std::string&) { h["head.bias"]["data_offsets"] = {0, 4000}; });
    CHECK(s.load_error() == "checkpoint " + st +
                                ": tensors 'head.bias' and 'patch_embed.proj.weight' overlap (the second's "
                                "data_offsets begin at 0, before the first's end at 4000): the file is corrupt");
  }
  SUBCASE("bytes of no tensor, after and inside the data") {
    s.edit_safetensors([](nlohmann::json&, std::string& data) { data += "trailing"; });
    CHECK(s.load_error() == "checkpoint " + st +
                                ": the last 8 bytes of the data section belong to no tensor: the file is corrupt");
    s.edit_safetensors([](nlohmann::json& h, std::string&) { h.erase("norm.bias"); });
    const std::string msg = s.load_error();
    CHECK(contains(msg, ") of the data section belong to no tensor (after '"));
    CHECK(contains(msg, st));
    s.edit_header([](nlohmann::json&) {});  // the data laid out anew: a file without norm.bias
    CHECK(contains(s.load_error(), "missing tensor 'norm.bias'"));
  }
  SUBCASE("a duplicate key") {
    std::string header = vitint::test::SafetensorsFile::parse(read_all(s.dir / "model.safetensors")).header.dump();
    header.insert(1, R"("head.bias":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]},)");
    s.write_header_text(header);
    CHECK(s.load_error() == "checkpoint " + st + ": the header has two entries 'head.bias'");
  }
  SUBCASE("padding with NUL bytes, where the parser would stop reading") {
    const std::string header = vitint::test::SafetensorsFile::parse(read_all(s.dir / "model.safetensors")).header.dump();
    s.write_header_text(header + std::string(6, '\0'));
    CHECK(s.load_error() == "checkpoint " + st +
                                ": the header holds a NUL byte (its padding must be spaces): corrupt or not a safetensors file");
    s.write_header_text(header + std::string(6, ' '));
    CHECK(s.load_error().empty());
  }
}

// Error messages quote a value briefly: dump() recurses, and 100000 levels
// of nesting overflowed the stack.
TEST_CASE("checkpoint: deeply nested and long JSON values give short errors, not a crash") {
  ScratchCheckpoint s;
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const std::string header = vitint::test::SafetensorsFile::parse(read_all(s.dir / "model.safetensors")).header.dump();
  s.write_header_text("{\"a\":" + deep + "," + header.substr(1));
  CHECK(s.load_error() == "checkpoint " + (s.dir / "model.safetensors").string() +
                              ", tensor 'a': header entry lacks dtype/shape/data_offsets: an array with 1 entry");
  s.write_header_text(header);
  const std::string cfg = read_all(s.dir / "config.json");
  const std::string cfg_path = (s.dir / "config.json").string();
  std::string text = nlohmann::json::parse(cfg).dump();
  text.insert(text.find("\"model_args\":{") + 14, "\"frobnicate\":" + deep + ",");
  write_all(s.dir / "config.json", text);
  CHECK(s.load_error() == "config " + cfg_path +
                              ": model_args.frobnicate = an array with 1 entry is not a model argument libvitint "
                              "understands");
  write_all(s.dir / "config.json", cfg);
  s.edit_config([](nlohmann::json& c) { c["model_args"]["qk_norm"] = std::string(100000, 'x'); });
  const std::string msg = s.load_error();
  CHECK(contains(msg, "model_args.qk_norm = \"xxxxx"));
  CHECK(msg.size() < 300);
}

TEST_CASE("checkpoint: preprocessing values in config.json are named where wrong") {
  ScratchCheckpoint s;
  const std::string where = "config " + (s.dir / "config.json").string() + ": pretrained_cfg.";
  s.edit_config([](nlohmann::json& c) { c["pretrained_cfg"]["interpolation"] = 3; });
  CHECK(s.load_error() == where + "interpolation must be a string, got 3");
  s.edit_config([](nlohmann::json& c) { c["pretrained_cfg"]["interpolation"] = "lanczos"; });
  CHECK(s.load_error() == where + "interpolation is \"lanczos\": only \"bicubic\" and \"bilinear\" are supported");
  // Not blamed on the weights by the calibration or the quantization later.
  s.edit_config([](nlohmann::json& c) {
    c["pretrained_cfg"]["interpolation"] = "bilinear";
    c["pretrained_cfg"]["mean"] = {1e38, 0.5, 0.5};
  });
  CHECK(s.load_error() == where + "mean must hold values in [0, 1], got [1e+38,0.5,0.5]");
  s.edit_config([](nlohmann::json& c) {
    c["pretrained_cfg"]["mean"] = {0.5, 0.5, 0.5};
    c["pretrained_cfg"]["std"] = {0.5, 1e38, 0.5};
  });
  CHECK(s.load_error() == where + "std must hold values in [0.001, 1000], got [0.5,1e+38,0.5]");
  s.edit_config([](nlohmann::json& c) { c["pretrained_cfg"]["std"] = {0.25, 0.5, 1}; });
  CHECK(s.load_error().empty());
}

TEST_CASE("convert: finite but absurd weights stop the conversion, naming where") {
  // Two fc1 weights of block 3 at 3e38 overflow the FP32 forward; one at 1e30
  // stays finite but leaves no representable requantization multiplier.
  const std::pair<float, const char*> cases[] = {
      {3e38f, "non-finite activations (NaN or infinity) at blocks.3 GELU output"},
      {1e30f, "quantizing blocks.3: make_dyadic: ratio"}};
  for (const auto& [value, expected] : cases) {
    INFO("weight " << value);
    ScratchCheckpoint s;
    s.edit_safetensors([value = value](nlohmann::json& header, std::string& data) {
      const uint64_t at = header["blocks.3.mlp.fc1.weight"]["data_offsets"][0].get<uint64_t>();
      for (int i = 0; i < 2; ++i) std::memcpy(&data[at + 4 * (10 + i)], &value, sizeof value);
    });
    const Checkpoint ck = Checkpoint::load(s.dir.string());
    vitint::format::Writer w;
    CHECK_THROWS_WITH_AS(vitint::convert::convert_in_process(ck, vitint::convert::synthetic_images(1, 224, 3), {},
                                                             "synthetic", &w),
                         doctest::Contains(expected), vitint::Error);
  }
}

TEST_CASE("checkpoint: random weights for standard architectures") {
  struct Case {
    const char* arch;
    int dim, heads;
    double crop;
    float mean0;
  };
  const Case cases[] = {{"deit_tiny_patch16_224", 192, 3, 0.875, 0.485f},
                        {"deit_small_patch16_224", 384, 6, 0.875, 0.485f},
                        {"deit_base_patch16_224", 768, 12, 0.875, 0.485f},
                        {"vit_base_patch16_224", 768, 12, 0.9, 0.5f},
                        {"vit_small_patch16_clip_224", 384, 6, 1.0, 0.48145466f}};
  for (const auto& c : cases) {
    CAPTURE(c.arch);
    const Checkpoint ck = Checkpoint::random(c.arch, 7);
    const VitConfig& cfg = ck.config();
    CHECK(cfg.architecture == c.arch);
    CHECK(cfg.embed_dim == c.dim);
    CHECK(cfg.num_heads == c.heads);
    CHECK(cfg.depth == 12);
    CHECK(cfg.mlp_hidden == 4 * c.dim);
    CHECK(cfg.num_classes == 1000);
    CHECK(cfg.crop_pct == doctest::Approx(c.crop));
    CHECK(cfg.mean[0] == doctest::Approx(c.mean0));
    CHECK(cfg.interpolation == vitint::Interpolation::kBicubic);
    CHECK(ck.tensors().size() == (cfg.pre_norm ? 154u : 152u));  // + norm_pre.weight, .bias
    const auto& qkv = ck.get("blocks.0.attn.qkv.weight");
    CHECK(qkv.shape == std::vector<int64_t>{3 * c.dim, c.dim});
    double sum = 0, sq = 0;
    for (float v : qkv.data) {
      sum += v;
      sq += static_cast<double>(v) * v;
    }
    const double n = static_cast<double>(qkv.data.size());
    CHECK(std::abs(sum / n) < 1e-3);
    CHECK(std::sqrt(sq / n) == doctest::Approx(0.0176).epsilon(0.05));  // trunc-normal(0.02, +-2 sigma)
    const auto& ln = ck.get("blocks.0.norm1.weight").data;
    CHECK(ln[0] == doctest::Approx(1.0).epsilon(0.3));
  }
  // Deterministic in the seed.
  const Checkpoint a = Checkpoint::random("deit_tiny_patch16_224", 1);
  const Checkpoint b = Checkpoint::random("deit_tiny_patch16_224", 1);
  const Checkpoint d = Checkpoint::random("deit_tiny_patch16_224", 2);
  CHECK(a.get("blocks.3.mlp.fc2.weight").data == b.get("blocks.3.mlp.fc2.weight").data);
  CHECK(a.get("blocks.3.mlp.fc2.weight").data != d.get("blocks.3.mlp.fc2.weight").data);
  CHECK_THROWS_AS(Checkpoint::random("resnet50", 1), vitint::Error);
  // Random weights are plain ViT/DeiT ones: no DeiT III, no sizes beyond base.
  CHECK_THROWS_AS(Checkpoint::random("deit3_small_patch16_224", 1), vitint::Error);
  CHECK_THROWS_AS(Checkpoint::random("vit_medium_patch16_224", 1), vitint::Error);
  // The CLIP-tower names are pre-norm ViTs (eps 1e-5, a zero patch bias).
  const Checkpoint clip = Checkpoint::random("vit_tiny_patch16_clip_224", 1);
  CHECK(clip.config().pre_norm);
  CHECK(clip.config().ln_eps == 1e-5f);
  CHECK(clip.get("norm_pre.weight").shape == std::vector<int64_t>{192});
  const auto& patch_bias = clip.get("patch_embed.proj.bias").data;
  CHECK(std::all_of(patch_bias.begin(), patch_bias.end(), [](float v) { return v == 0.0f; }));
  CHECK_FALSE(Checkpoint::random("vit_tiny_patch16_224", 1).config().pre_norm);
  CHECK_THROWS_AS(Checkpoint::random("deit_tiny_patch16_clip_224", 1), vitint::Error);
}

namespace {

// A JSON value at the edges of what the checkpoint parser must handle.
nlohmann::json edge_json(std::mt19937_64& rng) {
  static const nlohmann::json kValues[] = {0, 1, -1, 3, 7, 16, 192, 1000, 65536, 1LL << 31, 1LL << 40, 1LL << 62,
                                           -(1LL << 62), 18446744073709551615ULL, 0.5, -2.5, 1e300, "", "F32",
                                           "F16", "BF16", "F64", "I8", "bicubic", "avg", "token", nullptr,
                                           nlohmann::json::array(), nlohmann::json::object(), true};
  return kValues[rng() % std::size(kValues)];
}

}  // namespace

// Checkpoints a broken download or a hostile author could give: random
// edits of the safetensors header (dtypes, shapes, offsets, entries), of
// config.json and of the file's length. Each loads or is refused with a
// vitint::Error naming the file; nothing else escapes (under
// tools/sanitize.sh: no out-of-bounds read, no undefined arithmetic).
TEST_CASE("checkpoint: random header, config and length edits are refused or load, never crash") {
  const std::string src = vitint::test::model_dir(vitint::test::kDeitTiny);
  const auto st0 = vitint::test::SafetensorsFile::parse(read_all(fs::path(src) / "model.safetensors"));
  const nlohmann::json cfg0 = nlohmann::json::parse(read_all(fs::path(src) / "config.json"));
  std::vector<std::string> header_leaves, config_leaves;
  vitint::test::json_leaves(st0.header, "", &header_leaves);
  vitint::test::json_leaves(cfg0, "", &config_leaves);
  const vitint::test::TempDir tmp;
  const fs::path dir = tmp.path;
  std::mt19937_64 rng(2026);
  int loaded = 0, refused = 0;
  constexpr int kIterations = 150;
  for (int iter = 0; iter < kIterations; ++iter) {
    vitint::test::SafetensorsFile st{st0.header, {}};
    nlohmann::json cfg = cfg0;
    std::string what;
    for (int e = 1 + static_cast<int>(rng() % 3); e > 0; --e) {
      const bool header = rng() % 3 != 0;
      const std::string& at = header ? header_leaves[rng() % header_leaves.size()]
                                     : config_leaves[rng() % config_leaves.size()];
      nlohmann::json& doc = header ? st.header : cfg;
      const nlohmann::json::json_pointer ptr(at);
      if (rng() % 4 == 0) {
        nlohmann::json& parent = doc[ptr.parent_pointer()];
        if (parent.is_object()) {
          parent.erase(ptr.back());
        } else {
          parent.erase(std::stoul(ptr.back()));
        }
        what += " erase " + at + ";";
      } else {
        doc[ptr] = edge_json(rng);
        what += " " + at + " = " + doc[ptr].dump() + ";";
      }
    }
    std::string file = st.bytes();
    file += st0.data;
    if (rng() % 5 == 0) {
      file.resize(rng() % file.size());
      what += " truncated to " + std::to_string(file.size()) + ";";
    }
    write_all(dir / "model.safetensors", file);
    write_all(dir / "config.json", cfg.dump());
    INFO("iteration " << iter << ":" << what);
    try {
      Checkpoint::load(dir.string());
      ++loaded;
    } catch (const vitint::Error& e) {
      ++refused;
      const std::string msg = e.what();
      CHECK_MESSAGE((contains(msg, "model.safetensors") || contains(msg, "config.json")), msg);
    }
  }
  MESSAGE(loaded << " edited checkpoints loaded, " << refused << " were refused");
  CHECK(refused > kIterations / 2);
}

TEST_CASE("read_class_names") {
  const auto names =
      vitint::convert::read_class_names(vitint::test::shared_dir() + "/data/imagenet_synset_words.txt");
  REQUIRE(names.size() == 1000);
  CHECK(names[0] == "tench, Tinca tinca");
  CHECK(names[1] == "goldfish, Carassius auratus");
  CHECK_THROWS_AS(vitint::convert::read_class_names("/nonexistent/synsets.txt"), vitint::Error);
  // Every file a user names is read by vitint::read_file, which names a directory as such.
  const vitint::test::TempDir dir;
  CHECK_THROWS_WITH_AS(vitint::convert::read_class_names(dir.path),
                       ("cannot read class names file " + dir.path + ": it is a directory").c_str(), vitint::Error);
  // The names go into the model's JSON metadata, which must be UTF-8.
  const std::string latin1 = dir.file("latin1.txt");
  std::ofstream(latin1, std::ios::binary) << "n01 tench\nn02 caf\xe9\nn03 goldfish\n";
  CHECK_THROWS_WITH_AS(vitint::convert::read_class_names(latin1),
                       ("class names file " + latin1 + ":2: not valid UTF-8").c_str(), vitint::Error);
}

// Every binary16 pattern widens like the F16C instruction does (normal,
// subnormal, zero, infinities; NaNs stay NaN).
TEST_CASE("checkpoint: half_to_float over all 65536 patterns") {
  int mismatches = 0;
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float got = vitint::convert::half_to_float(static_cast<uint16_t>(h));
    const float want = vitint::test::from_f16(static_cast<uint16_t>(h));
    const bool same = std::isnan(want) ? std::isnan(got) : (got == want && std::signbit(got) == std::signbit(want));
    mismatches += !same;
  }
  CHECK(mismatches == 0);
  CHECK(vitint::convert::half_to_float(0x3c00) == 1.0f);
  CHECK(vitint::convert::half_to_float(0xc000) == -2.0f);
  CHECK(vitint::convert::half_to_float(0x7bff) == 65504.0f);
  CHECK(vitint::convert::half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(std::signbit(vitint::convert::half_to_float(0x8000)));
}
