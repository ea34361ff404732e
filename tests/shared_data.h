// Where the read-only models and images live: $VITINT_SHARED, else ../shared
// next to the source tree.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace vitint::test {

inline std::string shared_dir() {
  const char* env = std::getenv("VITINT_SHARED");
  return env && *env ? std::string(env) : std::string(VITINT_DEFAULT_SHARED);
}
inline std::string model_dir(const std::string& name) { return shared_dir() + "/models/" + name; }
inline std::string val_dir() { return shared_dir() + "/data/imagenet-val-1300"; }

constexpr const char* kDeitTiny = "deit_tiny_patch16_224.fb_in1k";
constexpr const char* kVitTiny = "vit_tiny_patch16_224.augreg_in21k_ft_in1k";

// FNV-1a hash of pixel bytes (pins decoded and resized images to PIL's).
inline uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : bytes) h = (h ^ b) * 1099511628211ull;
  return h;
}
// A validation JPEG and the hash of PIL's decode of it: libjpeg-turbo (ISLOW
// IDCT, fancy upsampling) reproduces it, stb_image does not.
constexpr const char* kPilProbeImage = "ILSVRC2012_val_00000347.JPEG";
constexpr uint64_t kPilProbeHash = 0xa9183480630a5f19ull;

}  // namespace vitint::test
