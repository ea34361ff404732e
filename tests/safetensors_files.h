// Safetensors checkpoints written by the tests: half-precision copies of the
// real models, and the timm-variant fixtures of tests/fixtures, whose weights
// are not stored but computed (fixture_value, as make_timm_variants.py does).
#pragma once
#include <doctest/doctest.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "temp_files.h"

namespace vitint::test {

// 16-bit encodings of a float, round to nearest even, and their exact
// widening: F16 through the F16C instructions (independent of the
// converter's half_to_float), BF16 by bit arithmetic.
__attribute__((target("f16c"))) inline uint16_t to_f16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
__attribute__((target("f16c"))) inline float from_f16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float from_bf16(uint16_t b) {
  const uint32_t u = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A safetensors file split into its JSON header and its data section (the
// tensors' data_offsets count from the start of `data`).
struct SafetensorsFile {
  nlohmann::json header = nlohmann::json::object();
  std::string data;

  static SafetensorsFile parse(const std::string& file) {
    REQUIRE(file.size() >= 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
    REQUIRE(n <= file.size() - 8);
    return {nlohmann::json::parse(file.substr(8, n)), file.substr(8 + n)};
  }
  // The file's bytes (8-byte little-endian header length, header, data).
  std::string bytes() const {
    const std::string h = header.dump();
    std::string length(8, '\0');
    for (int i = 0; i < 8; ++i) length[static_cast<size_t>(i)] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
    return length + h + data;
  }
};

// One tensor of a safetensors file in a 16-bit dtype ("F16" or "BF16").
struct Tensor16 {
  std::string name;
  nlohmann::json shape;
  std::vector<uint16_t> codes;
};

// Writes `tensors` as a safetensors file (little-endian, as timm's save_file).
inline void write_safetensors(const std::string& path, const std::string& dtype, const std::vector<Tensor16>& tensors) {
  SafetensorsFile f;
  for (const Tensor16& t : tensors) {
    const size_t at = f.data.size();
    for (uint16_t h : t.codes) {
      f.data.push_back(static_cast<char>(h & 0xff));
      f.data.push_back(static_cast<char>(h >> 8));
    }
    f.header[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {at, f.data.size()}}};
  }
  std::ofstream(path, std::ios::binary) << f.bytes();
}

// The value of element i of parameter `name`: q in [-1, 1] on a 2^-7 grid
// from a hash of (name, i), scaled per kind of parameter by powers of two,
// so exact in F16 (make_timm_variants.py's fixture_value, term by term).
inline float fixture_value(const std::string& name, const std::vector<int64_t>& shape, uint64_t i) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  uint64_t x = h + i + 0x9e3779b97f4a7c15ull;  // splitmix64(h + i)
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  const double q = (static_cast<double>(x % 257) - 128.0) / 128.0;
  auto ends_with = [&](const char* s) {
    const size_t n = std::strlen(s);
    return name.size() >= n && name.compare(name.size() - n, n, s) == 0;
  };
  if (ends_with("gamma")) return static_cast<float>(0.75 + 0.5 * q);
  if (name.find("norm") != std::string::npos && ends_with("weight")) return static_cast<float>(1.0 + 0.25 * q);
  if (ends_with("bias")) return static_cast<float>(0.125 * q);
  if (name == "pos_embed" || name == "cls_token" || name == "dist_token") return static_cast<float>(0.5 * q);
  int64_t fan_in = 1;
  for (size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
  return static_cast<float>(q * (fan_in >= 512 ? 0.03125 : fan_in >= 128 ? 0.125 : 0.25));
}

// A checkpoint directory for the fixture tests/fixtures/<name>: its
// config.json, and a model.safetensors in F16 with timm's parameter names
// and shapes (tensors.json) and the values fixture_value gives.
struct TimmFixture {
  TempDir tmp;
  explicit TimmFixture(const std::string& fixture_dir) {
    const nlohmann::json list = nlohmann::json::parse(read_text(fixture_dir + "/tensors.json"));
    std::vector<Tensor16> tensors;
    for (const auto& entry : list) {
      Tensor16 t{entry[0].get<std::string>(), entry[1], {}};
      const auto shape = entry[1].get<std::vector<int64_t>>();
      uint64_t numel = 1;
      for (int64_t d : shape) numel *= static_cast<uint64_t>(d);
      for (uint64_t i = 0; i < numel; ++i) t.codes.push_back(to_f16(fixture_value(t.name, shape, i)));
      tensors.push_back(std::move(t));
    }
    write_safetensors(tmp.file("model.safetensors"), "F16", tensors);
    std::ofstream(tmp.file("config.json"), std::ios::binary) << read_text(fixture_dir + "/config.json");
  }
};

}  // namespace vitint::test
