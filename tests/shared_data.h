// Where the read-only models and images live: $VITINT_SHARED, else ../shared
// next to the source tree.
#pragma once
#include <cstdlib>
#include <string>

namespace vitint::test {

inline std::string shared_dir() {
  const char* env = std::getenv("VITINT_SHARED");
  return env && *env ? std::string(env) : std::string(VITINT_DEFAULT_SHARED);
}
inline std::string model_dir(const std::string& name) { return shared_dir() + "/models/" + name; }
inline std::string val_dir() { return shared_dir() + "/data/imagenet-val-1300"; }

constexpr const char* kDeitTiny = "deit_tiny_patch16_224.fb_in1k";
constexpr const char* kVitTiny = "vit_tiny_patch16_224.augreg_in21k_ft_in1k";

}  // namespace vitint::test
