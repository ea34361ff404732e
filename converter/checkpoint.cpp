#include "converter/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "converter/cli.h"
#include "engine/src/read_file.h"
#include "vitint/error.h"

namespace vitint::convert {

float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  float magnitude;
  if (exponent == 0x1f) {
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else if (exponent == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -24);  // subnormal: 2^-14 m / 1024
  } else {
    magnitude = std::ldexp(static_cast<float>(mantissa + 0x400), exponent - 25);  // 2^(e-15) (1 + m / 1024)
  }
  return (h & 0x8000u) ? -magnitude : magnitude;
}

namespace {

using json = nlohmann::json;

constexpr std::array<float, 3> kImagenetMean{0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImagenetStd{0.229f, 0.224f, 0.225f};
constexpr std::array<float, 3> kInceptionMean{0.5f, 0.5f, 0.5f};
constexpr std::array<float, 3> kInceptionStd{0.5f, 0.5f, 0.5f};
// timm's OPENAI_CLIP_MEAN / OPENAI_CLIP_STD (its CLIP towers' default).
constexpr std::array<float, 3> kClipMean{0.48145466f, 0.4578275f, 0.40821073f};
constexpr std::array<float, 3> kClipStd{0.26862954f, 0.26130258f, 0.27577711f};

// Largest safetensors header we accept (the format's reference reader uses
// 100 MB as well); larger means a corrupt or hostile file.
constexpr uint64_t kMaxHeaderBytes = 100u * 1000u * 1000u;

// `v` for an error message: its JSON if short and flat, else what it is (a
// deeply nested value would overflow dump()'s recursion, a huge one the message).
std::string brief(const json& v) {
  const bool flat = std::none_of(v.begin(), v.end(), [](const json& e) { return e.is_structured(); });
  if (v.is_structured() && (!flat || v.size() > 8))
    return (v.is_object() ? "an object with " : "an array with ") + std::to_string(v.size()) +
           (v.size() == 1 ? " entry" : " entries");
  std::string s = v.dump();
  if (s.size() <= 80) return s;
  size_t cut = 77;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 character
  return s.substr(0, cut) + "...";
}

// Standard timm hyper-parameters, used when config.json's model_args lacks a
// value and by Checkpoint::random.
struct KnownArch {
  std::string family;  // "deit" or "vit"
  std::string size;    // "tiny", "small", "base", "large"
  int patch_size = 16;
  int image_size = 224;
  int embed_dim = 0;
  int depth = 0;
  int num_heads = 0;
  double mlp_ratio = 4.0;
};

// Parses "<deit|deit3|vit>_<size>_patch<P>_<S>" (sizes from tiny to huge, and
// the sbb family's wee, little, medium(d) and betwixt); false otherwise.
bool parse_known_arch(const std::string& name, KnownArch* out) {
  KnownArch a;
  std::string rest;
  if (name.rfind("deit_", 0) == 0) {
    a.family = "deit";
    rest = name.substr(5);
  } else if (name.rfind("deit3_", 0) == 0) {
    a.family = "deit3";
    rest = name.substr(6);
  } else if (name.rfind("vit_", 0) == 0) {
    a.family = "vit";
    rest = name.substr(4);
  } else {
    return false;
  }
  static const struct {
    const char* size;
    int dim, depth, heads;
    double mlp_ratio;
  } kSizes[] = {{"tiny", 192, 12, 3, 4.0},     {"small", 384, 12, 6, 4.0},   {"medium", 512, 12, 8, 4.0},
                {"base", 768, 12, 12, 4.0},    {"large", 1024, 24, 16, 4.0}, {"huge", 1280, 32, 16, 4.0},
                {"wee", 256, 14, 4, 5.0},      {"little", 320, 14, 5, 5.6},  {"mediumd", 512, 20, 8, 4.0},
                {"betwixt", 640, 12, 10, 4.0}};
  bool found = false;
  for (const auto& s : kSizes) {
    const std::string prefix = std::string(s.size) + "_patch";
    if (rest.rfind(prefix, 0) == 0) {
      a.size = s.size;
      a.embed_dim = s.dim;
      a.depth = s.depth;
      a.num_heads = s.heads;
      a.mlp_ratio = s.mlp_ratio;
      rest = rest.substr(prefix.size());
      found = true;
      break;
    }
  }
  if (!found) return false;
  // rest = "<P>_<S>" exactly
  const size_t us = rest.find('_');
  if (us == std::string::npos || us == 0 || us + 1 >= rest.size()) return false;
  const std::string p = rest.substr(0, us), s = rest.substr(us + 1);
  auto all_digits = [](const std::string& t) {
    if (t.empty() || t.size() > 4) return false;
    for (char c : t)
      if (c < '0' || c > '9') return false;
    return true;
  };
  if (!all_digits(p) || !all_digits(s)) return false;
  a.patch_size = std::stoi(p);
  a.image_size = std::stoi(s);
  *out = a;
  return true;
}

// Typed access to config.json with errors that name the file and the key.
class ConfigReader {
 public:
  explicit ConfigReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& why) const {
    throw Error("config " + path_ + ": " + key + " " + why);
  }
  int get_int(const json& obj, const char* key, const std::string& where) const {
    const json& v = obj.at(key);
    if (!v.is_number_integer() && !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()))
      fail(where + key, "must be an integer, got " + brief(v));
    const double d = v.get<double>();
    if (d < 1 || d > 1e6) fail(where + key, "is out of range: " + brief(v));
    return static_cast<int>(d);
  }
  double get_double(const json& obj, const char* key, const std::string& where) const {
    const json& v = obj.at(key);
    if (!v.is_number()) fail(where + key, "must be a number, got " + brief(v));
    return v.get<double>();
  }
  bool get_bool(const json& obj, const char* key, const std::string& where) const {
    const json& v = obj.at(key);
    if (!v.is_boolean()) fail(where + key, "must be true or false, got " + brief(v));
    return v.get<bool>();
  }
  std::string get_string(const json& obj, const char* key, const std::string& where) const {
    const json& v = obj.at(key);
    if (!v.is_string()) fail(where + key, "must be a string, got " + brief(v));
    return v.get<std::string>();
  }
  std::array<float, 3> get_vec3(const json& obj, const char* key, const std::string& where) const {
    const json& v = obj.at(key);
    if (!v.is_array() || v.size() != 3) fail(where + key, "must be a list of 3 numbers, got " + brief(v));
    std::array<float, 3> out{};
    for (size_t i = 0; i < 3; ++i) {
      if (!v[i].is_number()) fail(where + key, "must be a list of 3 numbers, got " + brief(v));
      out[i] = v[i].get<float>();
    }
    return out;
  }

 private:
  std::string path_;
};

// global_pool of `obj` if it has one: "token" (false) or "avg" (true).
void read_global_pool(const ConfigReader& rd, const json& obj, const std::string& where, bool* avg) {
  if (!obj.contains("global_pool") || obj["global_pool"].is_null()) return;
  const json& gp = obj["global_pool"];
  if (!gp.is_string() || (gp.get<std::string>() != "token" && gp.get<std::string>() != "avg"))
    rd.fail(where + "global_pool",
            "is " + brief(gp) + ": only class-token (\"token\") and average (\"avg\") pooling are supported");
  *avg = gp.get<std::string>() == "avg";
}

// timm's average-pooled ViT names, vit_<size>_patch<P>_reg<N>_gap_<S> and
// vit_<size>_patch<P>_gap_<S>: erases "_reg<N>" and "_gap" from *name
// (leaving the plain ViT's shape) and returns N (0 without _reg); -1 if the
// name is not one of them.
int strip_gap_name(std::string* name) {
  const size_t gap = name->find("_gap_");
  if (name->rfind("vit_", 0) != 0 || gap == std::string::npos) return -1;
  name->erase(gap, std::string("_gap").size());
  const size_t reg = name->rfind("_reg", gap);
  if (reg == std::string::npos) return 0;
  const std::string digits = name->substr(reg + 4, gap - reg - 4);
  if (digits.empty() || digits.size() > 2 || digits.find_first_not_of("0123456789") != std::string::npos) return 0;
  name->erase(reg, gap - reg);
  return std::stoi(digits);
}

// What a timm architecture name says beyond its shape: timm's registry
// arguments for it, which the hub's config.json does not repeat.
struct NamedArch {
  bool known = false;  // the plain name parsed (parse_known_arch)
  KnownArch shape;
  bool clip = false;             // a CLIP tower (its preprocessing defaults differ)
  std::optional<bool> fc_norm;   // the name's fc_norm; none: timm's default (on for average pooling)
};

// Sets the fields of *c that c->architecture implies, and returns the rest:
// - deit3_*: no_embed_class, LayerScale;
// - *_distilled_*: the distillation token and head;
// - vit_<size>_patch<P>_clip_<S>: pre_norm, LayerNorm eps 1e-5; with
//   _clip_quickgelu_ also QuickGELU;
// - vit_<size>_patch<P>_reg<N>_gap_<S> (the sbb family): no class token, N
//   register tokens without position embedding, LayerScale, average pooling
//   with fc_norm; vit_<size>_patch<P>_gap_<S>: no class token, average
//   pooling after the final norm, and for the medium size no qkv bias and
//   LayerScale.
NamedArch apply_name(VitConfig* c) {
  const std::string& arch = c->architecture;
  NamedArch n;
  const bool deit3 = arch.rfind("deit3_", 0) == 0;
  c->distilled = arch.find("_distilled_") != std::string::npos;
  n.clip = arch.rfind("vit_", 0) == 0 && arch.find("_clip_") != std::string::npos;
  c->quick_gelu = n.clip && arch.find("_clip_quickgelu_") != std::string::npos;
  c->pre_norm = n.clip;
  if (n.clip) c->ln_eps = 1e-5f;
  std::string plain = arch;
  if (c->distilled) plain.erase(plain.find("_distilled_"), std::string("_distilled").size());
  if (c->quick_gelu) plain.erase(plain.find("_quickgelu_"), std::string("_quickgelu").size());
  if (n.clip) plain.erase(plain.find("_clip_"), std::string("_clip").size());
  const int gap_regs = strip_gap_name(&plain);
  n.known = parse_known_arch(plain, &n.shape);
  const bool medium_gap = gap_regs == 0 && n.known && n.shape.size == "medium";
  if (gap_regs >= 0) {
    c->class_token = false;
    c->avg_pool = true;
    c->reg_tokens = gap_regs;
    if (gap_regs == 0) n.fc_norm = false;
  }
  c->no_embed_class = deit3 || gap_regs > 0;
  c->layer_scale = deit3 || gap_regs > 0 || medium_gap;
  c->qkv_bias = !medium_gap;
  return n;
}

// timm's preprocessing defaults (used where pretrained_cfg is silent): DeiT
// the ImageNet statistics and crop 0.875, the CLIP towers OpenAI's and crop
// 1, the other ViTs (AugReg) 0.5 / 0.5 and crop 0.9.
void set_default_preprocess(bool deit, bool clip, VitConfig* c) {
  c->crop_pct = deit ? 0.875 : clip ? 1.0 : 0.9;
  c->mean = deit ? kImagenetMean : clip ? kClipMean : kInceptionMean;
  c->std = deit ? kImagenetStd : clip ? kClipStd : kInceptionStd;
}

VitConfig parse_config(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "config");
  json cfg;
  try {
    cfg = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    throw Error("config " + path + " is not valid JSON: " + e.what());
  }
  if (!cfg.is_object()) throw Error("config " + path + " is not a JSON object");
  ConfigReader rd(path);
  VitConfig c;
  if (!cfg.contains("architecture")) rd.fail("architecture", "is missing");
  c.architecture = rd.get_string(cfg, "architecture", "");
  const std::string& arch = c.architecture;
  const bool is_deit3 = arch.rfind("deit3_", 0) == 0;
  const bool is_deit = arch.rfind("deit_", 0) == 0 || is_deit3;
  const bool is_vit = arch.rfind("vit_", 0) == 0;
  if (!is_deit && !is_vit)
    rd.fail("architecture", "'" + arch +
                                "' is not supported: libvitint handles timm's plain ViT "
                                "(vit_*), DeiT (deit_*) and DeiT III (deit3_*) models");
  // The name's registry arguments first; config.json's keys override them.
  const NamedArch named = apply_name(&c);
  if (c.distilled && !is_deit)
    rd.fail("architecture", "'" + arch + "': only DeiT (deit_*) comes distilled");
  const bool has_known = named.known;
  const KnownArch& known = named.shape;
  std::optional<bool> fc_norm = named.fc_norm;
  read_global_pool(rd, cfg, "", &c.avg_pool);
  const json empty = json::object();
  const json& margs = cfg.contains("model_args") ? cfg["model_args"] : empty;
  if (!margs.is_object()) rd.fail("model_args", "must be an object");
  const std::string ma = "model_args.";
  read_global_pool(rd, margs, ma, &c.avg_pool);

  // Keys with no effect at inference, and keys that must keep timm's default
  // for the network to be the plain ViT that libvitint implements.
  static const std::set<std::string> kIgnored = {
      "drop_rate",      "pos_drop_rate",  "patch_drop_rate", "proj_drop_rate",
      "attn_drop_rate", "drop_path_rate", "weight_init",     "global_pool"};
  static const std::set<std::string> kHandled = {"patch_size", "embed_dim", "depth",
                                                 "num_heads",  "mlp_ratio", "qkv_bias",
                                                 "img_size",   "in_chans",  "num_classes"};
  for (const auto& [key, value] : margs.items()) {
    if (kIgnored.count(key) || kHandled.count(key)) continue;
    if (key == "no_embed_class") {
      c.no_embed_class = rd.get_bool(margs, "no_embed_class", ma);
      continue;
    }
    if (key == "init_values") {  // null or 0: no LayerScale; a number: LayerScale
      if (!value.is_null() && !value.is_number()) rd.fail(ma + key, "must be a number or null, got " + brief(value));
      c.layer_scale = value.is_number() && value.get<double>() != 0.0;
      continue;
    }
    if (key == "pre_norm") {
      c.pre_norm = rd.get_bool(margs, "pre_norm", ma);
      continue;
    }
    if (key == "act_layer") {  // timm's names of the two activations libvitint has
      const std::string act = rd.get_string(margs, "act_layer", ma);
      if (act != "gelu" && act != "quick_gelu")
        rd.fail(ma + key, "is \"" + act + "\": only \"gelu\" and \"quick_gelu\" are supported");
      c.quick_gelu = act == "quick_gelu";
      continue;
    }
    if (key == "class_token") {
      c.class_token = rd.get_bool(margs, "class_token", ma);
      continue;
    }
    if (key == "reg_tokens") {
      c.reg_tokens = rd.get_int(margs, "reg_tokens", ma);
      if (c.reg_tokens < 0 || c.reg_tokens > 16) rd.fail(ma + key, "must be in [0, 16]");
      continue;
    }
    if (key == "fc_norm") {  // null: timm's default (on for average pooling)
      if (!value.is_null()) fc_norm = rd.get_bool(margs, "fc_norm", ma);
      continue;
    }
    const bool is_default = value.is_null() || (value.is_boolean() && !value.get<bool>()) ||
                            (value.is_number() && value.get<double>() == 0.0);
    static const std::set<std::string> kMustBeDefault = {
        "qk_norm",
        "dynamic_img_size", "dynamic_img_pad", "proj_bias", "final_norm"};
    if (kMustBeDefault.count(key)) {
      // proj_bias and final_norm default to true in timm.
      const bool ok = (key == "proj_bias" || key == "final_norm")
                          ? (value.is_boolean() && value.get<bool>())
                          : is_default;
      if (ok) continue;
      rd.fail(ma + key, "= " + brief(value) +
                            " is not supported (libvitint implements the timm ViT with a class "
                            "token, no register tokens, pre-norm blocks)");
    }
    rd.fail(ma + key, "= " + brief(value) + " is not a model argument libvitint understands");
  }

  auto int_arg = [&](const char* key, int fallback, bool have_fallback) {
    if (margs.contains(key)) return rd.get_int(margs, key, ma);
    if (!have_fallback)
      rd.fail(ma + key, "is missing and '" + arch + "' is not a standard timm name to infer it from");
    return fallback;
  };
  c.patch_size = int_arg("patch_size", known.patch_size, has_known);
  c.embed_dim = int_arg("embed_dim", known.embed_dim, has_known);
  c.depth = int_arg("depth", known.depth, has_known);
  c.num_heads = int_arg("num_heads", known.num_heads, has_known);
  c.in_chans = margs.contains("in_chans") ? rd.get_int(margs, "in_chans", ma) : 3;
  if (c.in_chans != 3) rd.fail(ma + "in_chans", "must be 3 (RGB)");
  const double mlp_ratio =
      margs.contains("mlp_ratio") ? rd.get_double(margs, "mlp_ratio", ma) : (has_known ? known.mlp_ratio : 4.0);
  if (!(mlp_ratio > 0.0) || mlp_ratio > 64.0) rd.fail(ma + "mlp_ratio", "is out of range");
  c.mlp_hidden = static_cast<int>(c.embed_dim * mlp_ratio);  // timm: int(dim * mlp_ratio)
  if (margs.contains("qkv_bias")) c.qkv_bias = rd.get_bool(margs, "qkv_bias", ma);
  if (!c.class_token && !c.avg_pool)
    rd.fail(ma + "class_token", "is false: without a class token only average pooling (global_pool \"avg\") works");
  c.fc_norm = fc_norm.value_or(c.avg_pool);
  if (!c.avg_pool && c.fc_norm) rd.fail(ma + "fc_norm", "is true: fc_norm with class-token pooling is not supported");
  if (c.distilled && (c.avg_pool || c.reg_tokens > 0))
    rd.fail("architecture", "'" + arch + "': a distilled DeiT with register tokens or average pooling is not supported");

  const json& pcfg = cfg.contains("pretrained_cfg") ? cfg["pretrained_cfg"] : empty;
  if (!pcfg.is_object()) rd.fail("pretrained_cfg", "must be an object");
  const std::string pc = "pretrained_cfg.";
  c.image_size = has_known ? known.image_size : 224;
  if (margs.contains("img_size")) c.image_size = rd.get_int(margs, "img_size", ma);
  if (pcfg.contains("input_size")) {
    const json& is = pcfg["input_size"];
    if (!is.is_array() || is.size() != 3 || !is[0].is_number_integer() ||
        !is[1].is_number_integer() || !is[2].is_number_integer() || is[0].get<int>() != 3 ||
        is[1].get<int>() != is[2].get<int>() || is[1].get<int>() <= 0)
      rd.fail(pc + "input_size", "must be [3, S, S] (square RGB input), got " + brief(is));
    c.image_size = is[1].get<int>();
  }
  c.tag = pcfg.contains("tag") ? rd.get_string(pcfg, "tag", pc) : "";
  c.interpolation = Interpolation::kBicubic;
  if (pcfg.contains("interpolation")) {
    const std::string name = rd.get_string(pcfg, "interpolation", pc);
    if (name != "bicubic" && name != "bilinear")
      rd.fail(pc + "interpolation", "is \"" + name + "\": only \"bicubic\" and \"bilinear\" are supported");
    c.interpolation = parse_interpolation(name);
  }
  set_default_preprocess(is_deit, named.clip, &c);
  if (pcfg.contains("crop_pct")) c.crop_pct = rd.get_double(pcfg, "crop_pct", pc);
  if (!(c.crop_pct > 0.0) || c.crop_pct > 1.0) rd.fail(pc + "crop_pct", "must be in (0, 1]");
  if (pcfg.contains("crop_mode") && rd.get_string(pcfg, "crop_mode", pc) != "center")
    rd.fail(pc + "crop_mode", "must be \"center\" (the only eval crop libvitint implements)");
  if (pcfg.contains("mean")) c.mean = rd.get_vec3(pcfg, "mean", pc);
  if (pcfg.contains("std")) c.std = rd.get_vec3(pcfg, "std", pc);
  // They normalize pixels in [0, 1]; far beyond these bounds the FP32 forward
  // overflows or the folded patch embedding no longer fits the integer format.
  for (float m : c.mean)
    if (!(m >= 0.0f && m <= 1.0f)) rd.fail(pc + "mean", "must hold values in [0, 1], got " + brief(pcfg.at("mean")));
  for (float s : c.std)
    if (!(s >= 1e-3f && s <= 1e3f))
      rd.fail(pc + "std", "must hold values in [0.001, 1000], got " + brief(pcfg.at("std")));

  c.num_classes = 1000;
  if (cfg.contains("num_classes")) c.num_classes = rd.get_int(cfg, "num_classes", "");
  else if (margs.contains("num_classes")) c.num_classes = rd.get_int(margs, "num_classes", ma);
  else if (pcfg.contains("num_classes")) c.num_classes = rd.get_int(pcfg, "num_classes", pc);

  if (c.embed_dim % c.num_heads != 0)
    rd.fail(ma + "embed_dim", "(" + std::to_string(c.embed_dim) + ") is not a multiple of num_heads (" +
                                  std::to_string(c.num_heads) + ")");
  if (c.image_size % c.patch_size != 0)
    rd.fail(ma + "patch_size", "(" + std::to_string(c.patch_size) + ") does not divide the image size (" +
                                   std::to_string(c.image_size) + ")");
  return c;
}

// name -> shape of every tensor a timm ViT/DeiT state_dict holds.
std::map<std::string, std::vector<int64_t>> expected_tensors(const VitConfig& c) {
  const int64_t d = c.embed_dim, h = c.mlp_hidden, p = c.patch_size, n = c.num_tokens();
  std::map<std::string, std::vector<int64_t>> e;
  e["patch_embed.proj.weight"] = {d, c.in_chans, p, p};
  if (!c.pre_norm) e["patch_embed.proj.bias"] = {d};  // timm: bias=not pre_norm
  if (c.class_token) e["cls_token"] = {1, 1, d};
  if (c.reg_tokens > 0) e["reg_token"] = {1, c.reg_tokens, d};
  if (c.distilled) {
    e["dist_token"] = {1, 1, d};
    e["head_dist.weight"] = {c.num_classes, d};
    e["head_dist.bias"] = {c.num_classes};
  }
  e["pos_embed"] = {1, c.no_embed_class ? n - c.prefix_tokens() : n, d};
  if (c.pre_norm) {
    e["norm_pre.weight"] = {d};
    e["norm_pre.bias"] = {d};
  }
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    e[b + "norm1.weight"] = {d};
    e[b + "norm1.bias"] = {d};
    e[b + "attn.qkv.weight"] = {3 * d, d};
    if (c.qkv_bias) e[b + "attn.qkv.bias"] = {3 * d};
    e[b + "attn.proj.weight"] = {d, d};
    e[b + "attn.proj.bias"] = {d};
    if (c.layer_scale) {
      e[b + "ls1.gamma"] = {d};
      e[b + "ls2.gamma"] = {d};
    }
    e[b + "norm2.weight"] = {d};
    e[b + "norm2.bias"] = {d};
    e[b + "mlp.fc1.weight"] = {h, d};
    e[b + "mlp.fc1.bias"] = {h};
    e[b + "mlp.fc2.weight"] = {d, h};
    e[b + "mlp.fc2.bias"] = {d};
  }
  // Average pooling with fc_norm: timm's final norm is the identity, fc_norm follows the pooling.
  const std::string final_norm = c.avg_pool && c.fc_norm ? "fc_norm" : "norm";
  e[final_norm + ".weight"] = {d};
  e[final_norm + ".bias"] = {d};
  e["head.weight"] = {c.num_classes, d};
  e["head.bias"] = {c.num_classes};
  return e;
}

std::string unexpected_hint(const std::string& name) {
  if (name == "dist_token" || name.rfind("head_dist", 0) == 0)
    return " (a distilled DeiT's: its architecture name must say _distilled_)";
  if (name == "reg_token")
    return " (register tokens: config.json must set model_args.reg_tokens or name a vit_*_reg<N>_gap_* architecture)";
  if (name.rfind("fc_norm", 0) == 0) return " (fc_norm means average pooling: config.json must set global_pool \"avg\")";
  if (name.rfind("norm_pre", 0) == 0)
    return " (a pre-norm ViT's: config.json must set model_args.pre_norm or name a vit_*_clip_* architecture)";
  if (name.find(".ls1.") != std::string::npos || name.find(".ls2.") != std::string::npos)
    return " (LayerScale, but config.json sets no model_args.init_values)";
  return "";
}

// Element types read from safetensors: F32 as timm saves its checkpoints,
// F16 and BF16 as saved after model.half() / model.bfloat16(). Both widen to
// float exactly.
struct DType {
  const char* name;
  size_t bytes;
  float (*widen)(const char* p);
};

uint16_t load_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | (static_cast<uint8_t>(p[1]) << 8));
}

float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float widen_f32(const char* p) {
  uint32_t bits;
  std::memcpy(&bits, p, sizeof bits);  // little-endian, like every host libvitint targets
  return from_bits(bits);
}

float widen_bf16(const char* p) { return from_bits(uint32_t{load_u16(p)} << 16); }

float widen_f16(const char* p) { return half_to_float(load_u16(p)); }

const DType kDTypes[] = {{"F32", 4, widen_f32}, {"F16", 2, widen_f16}, {"BF16", 2, widen_bf16}};

std::map<std::string, Tensor> read_safetensors(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "checkpoint");
  const std::string where = "checkpoint " + path;
  if (bytes.size() < 8)
    throw Error(where + " is truncated: " + std::to_string(bytes.size()) +
                " bytes, not even the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  if (header_len > kMaxHeaderBytes || header_len > bytes.size() - 8)
    throw Error(where + ": the header length (" + std::to_string(header_len) +
                " bytes) runs past the end of the file (" + std::to_string(bytes.size()) +
                " bytes): truncated or not a safetensors file");
  // nlohmann's parser stops at a NUL byte; safetensors pads its header with spaces only.
  const auto header_end = bytes.begin() + 8 + static_cast<std::ptrdiff_t>(header_len);
  if (std::find(bytes.begin() + 8, header_end, '\0') != header_end)
    throw Error(where + ": the header holds a NUL byte (its padding must be spaces): corrupt or not a safetensors file");
  json header;
  std::set<std::string> names;  // a duplicate key would silently replace the first entry
  const auto no_duplicates = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second)
      throw Error(where + ": the header has two entries '" + parsed.get<std::string>() + "'");
    return true;
  };
  try {
    header = json::parse(bytes.begin() + 8, header_end, no_duplicates);
  } catch (const json::exception& e) {
    throw Error(where + ": the header is not valid JSON (" + e.what() + "): not a safetensors file?");
  }
  if (!header.is_object()) throw Error(where + ": the header is not a JSON object");
  const size_t data_start = 8 + static_cast<size_t>(header_len);
  const uint64_t data_size = bytes.size() - data_start;

  std::map<std::string, Tensor> tensors;
  std::vector<std::tuple<uint64_t, uint64_t, std::string>> ranges;  // data_offsets
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string tw = where + ", tensor '" + name + "'";
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
        !info.contains("data_offsets"))
      throw Error(tw + ": header entry lacks dtype/shape/data_offsets: " + brief(info));
    const json& dtype_name = info["dtype"];
    if (!dtype_name.is_string()) throw Error(tw + ": dtype is not a string");
    const DType* dtype = nullptr;
    for (const DType& d : kDTypes)
      if (dtype_name.get<std::string>() == d.name) dtype = &d;
    if (!dtype)
      throw Error(tw + ": dtype " + dtype_name.get<std::string>() +
                  " is not supported (F32, F16 or BF16); re-save the checkpoint in float32");
    Tensor t;
    const json& shape = info["shape"];
    if (!shape.is_array()) throw Error(tw + ": shape is not a list");
    uint64_t numel = 1;
    for (const json& dim : shape) {
      if (!dim.is_number_unsigned()) throw Error(tw + ": bad shape " + brief(shape));
      const uint64_t dv = dim.get<uint64_t>();
      if (dv != 0 && numel > (data_size / dtype->bytes) / dv + 1)
        throw Error(tw + ": shape " + brief(shape) + " is larger than the file");
      numel *= dv;
      t.shape.push_back(static_cast<int64_t>(dv));
    }
    const json& off = info["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw Error(tw + ": data_offsets must be [begin, end], got " + brief(off));
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > data_size)
      throw Error(tw + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                  "] (byte " + std::to_string(data_start + end) + " of the file) lie outside the " +
                  std::to_string(data_size) + "-byte data section: the file is truncated or corrupt");
    if (end - begin != numel * dtype->bytes)
      throw Error(tw + ": data_offsets span " + std::to_string(end - begin) + " bytes but shape " +
                  shape_str(t.shape) + " in " + dtype->name + " needs " + std::to_string(numel * dtype->bytes));
    ranges.emplace_back(begin, end, name);
    t.data.resize(static_cast<size_t>(numel));
    const char* src = bytes.data() + data_start + begin;
    for (size_t i = 0; i < t.data.size(); ++i) {
      t.data[i] = dtype->widen(src + i * dtype->bytes);
      // A NaN or infinite weight would make every output of the model NaN.
      if (!std::isfinite(t.data[i]))
        throw Error(tw + ": element " + std::to_string(i) + " is " + (std::isnan(t.data[i]) ? "NaN" : "infinite") +
                    ": the checkpoint is corrupt");
    }
    tensors.emplace(name, std::move(t));
  }
  // The format's rule: sorted by begin, the tensors' bytes tile the data
  // section exactly, so that no tensor reads another's bytes.
  std::sort(ranges.begin(), ranges.end());
  uint64_t covered = 0;
  std::string last;
  for (const auto& [begin, end, name] : ranges) {
    if (begin < covered)
      throw Error(where + ": tensors '" + last + "' and '" + name + "' overlap (the second's data_offsets begin at " +
                  std::to_string(begin) + ", before the first's end at " + std::to_string(covered) +
                  "): the file is corrupt");
    if (begin > covered)
      throw Error(where + ": bytes [" + std::to_string(covered) + ", " + std::to_string(begin) +
                  ") of the data section belong to no tensor (" + (last.empty() ? "" : "after '" + last + "', ") +
                  "before '" + name + "'): the file is corrupt");
    covered = end;
    last = name;
  }
  if (covered != data_size)
    throw Error(where + ": the last " + std::to_string(data_size - covered) +
                " bytes of the data section belong to no tensor: the file is corrupt");
  return tensors;
}

void validate_tensors(const VitConfig& c, const std::map<std::string, Tensor>& tensors,
                      const std::string& path) {
  const auto expected = expected_tensors(c);
  std::vector<std::string> problems;
  for (const auto& [name, shape] : expected) {
    auto it = tensors.find(name);
    if (it == tensors.end())
      problems.push_back("missing tensor '" + name + "' (expected shape " + shape_str(shape) + ")");
    else if (it->second.shape != shape)
      problems.push_back("tensor '" + name + "' has shape " + shape_str(it->second.shape) +
                         ", expected " + shape_str(shape));
  }
  for (const auto& [name, t] : tensors)
    if (!expected.count(name))
      problems.push_back("unexpected tensor '" + name + "' " + shape_str(t.shape) +
                         unexpected_hint(name));
  if (problems.empty()) return;
  std::ostringstream msg;
  msg << "checkpoint " << path << " does not match " << c.architecture << " (D=" << c.embed_dim
      << ", depth=" << c.depth << ", heads=" << c.num_heads << ", mlp=" << c.mlp_hidden
      << ", patch=" << c.patch_size << ", image=" << c.image_size
      << ", classes=" << c.num_classes << ", qkv_bias=" << (c.qkv_bias ? "true" : "false")
      << " from config.json): ";
  constexpr size_t kMaxListed = 10;
  for (size_t i = 0; i < problems.size() && i < kMaxListed; ++i) msg << (i ? "; " : "") << problems[i];
  if (problems.size() > kMaxListed) msg << "; and " << problems.size() - kMaxListed << " more";
  throw Error(msg.str());
}

// Deterministic on every platform (std::normal_distribution is not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    constexpr double kTwoPi = 6.283185307179586476925;
    spare_ = r * std::sin(kTwoPi * u2);
    has_spare_ = true;
    return r * std::cos(kTwoPi * u2);
  }
  double trunc_normal(double std) {  // truncated at +-2 std, like timm's init
    for (;;) {
      const double v = normal();
      if (v >= -2.0 && v <= 2.0) return v * std;
    }
  }

 private:
  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// DeiT III's two differences from the plain ViT, rewritten into it (the
// converter, the FP32 reference and the integer engine then see one form),
// and the biases a ViT may lack (the pre-norm ViT's patch embedding's, qkv's
// with qkv_bias false), which become zero ones:
// - no_embed_class: timm adds pos_embed to the patch tokens and then
//   prepends the class token; a zero row for it in front of pos_embed gives
//   the same sums (cls + 0 = cls exactly).
// - LayerScale: x + gamma * (W y + b) = x + (diag(gamma) W) y + gamma b, so
//   gamma folds into the rows of attn.proj (ls1) and mlp.fc2 (ls2); the
//   result differs from timm's by float rounding only.
void to_plain_vit(const VitConfig& c, std::map<std::string, Tensor>* tensors) {
  auto zero_bias = [&](const std::string& name, int n) {
    (*tensors)[name] = {{n}, std::vector<float>(static_cast<size_t>(n), 0.0f)};
  };
  if (c.pre_norm) zero_bias("patch_embed.proj.bias", c.embed_dim);
  if (!c.qkv_bias)
    for (int i = 0; i < c.depth; ++i) zero_bias("blocks." + std::to_string(i) + ".attn.qkv.bias", 3 * c.embed_dim);
  if (c.no_embed_class) {
    Tensor& pos = tensors->at("pos_embed");
    pos.data.insert(pos.data.begin(), static_cast<size_t>(c.prefix_tokens()) * c.embed_dim, 0.0f);
    pos.shape = {1, c.num_tokens(), c.embed_dim};
  }
  if (!c.layer_scale) return;
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const auto& [ls, linear] : {std::pair<std::string, std::string>{"ls1", "attn.proj"}, {"ls2", "mlp.fc2"}}) {
      const std::vector<float> gamma = tensors->at(b + ls + ".gamma").data;
      Tensor& w = tensors->at(b + linear + ".weight");
      Tensor& bias = tensors->at(b + linear + ".bias");
      const size_t in = static_cast<size_t>(w.shape[1]);
      for (size_t j = 0; j < gamma.size(); ++j) {
        for (size_t k = 0; k < in; ++k) w.data[j * in + k] *= gamma[j];
        bias.data[j] *= gamma[j];
      }
      tensors->erase(b + ls + ".gamma");
    }
  }
}

}  // namespace

Checkpoint Checkpoint::load(const std::string& dir) {
  Checkpoint ck;
  ck.config_ = parse_config(dir + "/config.json");
  const std::string st_path = dir + "/model.safetensors";
  ck.tensors_ = read_safetensors(st_path);
  validate_tensors(ck.config_, ck.tensors_, st_path);
  to_plain_vit(ck.config_, &ck.tensors_);
  return ck;
}

Checkpoint Checkpoint::random(const std::string& architecture, uint32_t seed) {
  Checkpoint ck;
  VitConfig& c = ck.config_;
  c.architecture = architecture;
  const NamedArch named = apply_name(&c);  // as parse_config reads the name
  const KnownArch& known = named.shape;
  if (!named.known || known.family == "deit3" || c.distilled || c.quick_gelu ||
      (known.size != "tiny" && known.size != "small" && known.size != "base") || known.patch_size != 16 ||
      known.image_size != 224)
    throw Error("Checkpoint::random: unknown architecture '" + architecture +
                "' (use deit_{tiny,small,base}_patch16_224 or vit_{tiny,small,base}_patch16{,_clip,_gap,_reg<N>_gap}_224)");
  c.fc_norm = named.fc_norm.value_or(c.avg_pool);
  c.tag = "random";
  c.image_size = known.image_size;
  c.patch_size = known.patch_size;
  c.embed_dim = known.embed_dim;
  c.depth = known.depth;
  c.num_heads = known.num_heads;
  c.mlp_hidden = static_cast<int>(known.embed_dim * known.mlp_ratio);  // timm: int(dim * mlp_ratio)
  c.num_classes = 1000;
  c.interpolation = Interpolation::kBicubic;
  set_default_preprocess(known.family == "deit", named.clip, &c);

  // timm's initialization (trunc-normal 0.02 for Linear weights and
  // pos_embed, PyTorch's default uniform for the patch conv); norms and
  // biases get a small spread around ones/zeros so that no term of the
  // integer pipeline is trivially zero or one.
  Rng rng(0x5EED0000ull ^ (static_cast<uint64_t>(seed) << 20));
  const auto expected = expected_tensors(c);
  for (const auto& [name, shape] : expected) {
    Tensor t;
    t.shape = shape;
    t.data.resize(static_cast<size_t>(t.numel()));
    const bool is_norm = name.find("norm") != std::string::npos;
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (name == "patch_embed.proj.weight" || name == "patch_embed.proj.bias") {
      const double bound = 1.0 / std::sqrt(static_cast<double>(c.in_chans * c.patch_size * c.patch_size));
      for (float& v : t.data) v = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
    } else if (is_norm && is_weight) {
      for (float& v : t.data) v = static_cast<float>(1.0 + rng.trunc_normal(0.1));
    } else {  // class token, position embedding, norm biases, linear weights and biases
      for (float& v : t.data) v = static_cast<float>(rng.trunc_normal(0.02));
    }
    ck.tensors_.emplace(name, std::move(t));
  }
  to_plain_vit(c, &ck.tensors_);
  return ck;
}

const Tensor& Checkpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw Error("checkpoint of " + config_.architecture + " has no tensor '" + name + "'");
  return it->second;
}

std::vector<std::string> read_class_names(const std::string& path) {
  const std::vector<char> bytes = read_file(path, "class names file");
  std::vector<std::string> names;
  std::string line;
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  int lineno = 0;
  std::vector<std::string> lines;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();  // trailing blank lines
  for (const std::string& l : lines) {
    ++lineno;
    if (utf8_text(l) != l)  // the model file's metadata would refuse it
      throw Error("class names file " + path + ":" + std::to_string(lineno) + ": not valid UTF-8");
    const size_t sp = l.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= l.size())
      throw Error("class names file " + path + ", line " + std::to_string(lineno) +
                  ": expected \"<synset id> <name>\", got \"" + l + "\"");
    names.push_back(l.substr(sp + 1));
  }
  if (names.empty()) throw Error("class names file " + path + " is empty");
  return names;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace vitint::convert
