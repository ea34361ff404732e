// timm checkpoints: config.json + model.safetensors, validated against the
// ViT/DeiT tensor spec derived from the hyper-parameters.
#pragma once
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "vitint/image.h"

namespace vitint::convert {

struct VitConfig {
  std::string architecture;  // e.g. "deit_tiny_patch16_224"
  std::string tag;           // pretrained_cfg.tag, e.g. "fb_in1k"
  int image_size = 224;
  int patch_size = 16;
  int in_chans = 3;
  int embed_dim = 0;
  int depth = 0;
  int num_heads = 0;
  int mlp_hidden = 0;  // fc1 output width (embed_dim * mlp_ratio)
  int num_classes = 0;
  bool qkv_bias = true;
  float ln_eps = 1e-6f;  // timm ViT/DeiT use LayerNorm(eps=1e-6), the CLIP towers 1e-5
  // DeiT III (deit3_*) and ViTs with these model_args, as stored in the
  // checkpoint; Checkpoint::load turns both into the plain form (see there).
  bool no_embed_class = false;  // pos_embed covers the patches only, not the class token
  bool layer_scale = false;     // blocks.i.ls1.gamma / ls2.gamma scale the two branches
  // Distilled DeiT (deit_*_distilled_*): a distillation token after the class
  // token and a second head on it; the logits are the mean of the two heads.
  bool distilled = false;
  // Pre-norm ViT (timm's pre_norm=True, the CLIP image towers vit_*_clip_*):
  // a LayerNorm (norm_pre.*) between the embedding and the first block.
  bool pre_norm = false;
  // QuickGELU, x * sigmoid(1.702 x), for GELU (timm's act_layer "quick_gelu",
  // the vit_*_clip_quickgelu_* towers).
  bool quick_gelu = false;
  // Token layout and pooling: class token (model_args.class_token), register
  // tokens after it (reg_tokens, no position embedding with no_embed_class),
  // and global_pool "avg" (the head reads the mean of the patch tokens after a
  // LayerNorm fc_norm, timm's default for average pooling; without a class
  // token only average pooling is possible). The sbb ViTs
  // vit_<size>_patch<P>_reg<N>_gap_<S> are all three.
  bool class_token = true;
  int reg_tokens = 0;
  bool avg_pool = false;
  // avg_pool: timm's fc_norm after the pooling (true; its final norm is the
  // identity), or the final norm on every token before it (false, as in
  // vit_<size>_patch<P>_gap_<S>).
  bool fc_norm = true;
  // Preprocessing from pretrained_cfg.
  double crop_pct = 0.875;
  Interpolation interpolation = Interpolation::kBicubic;
  std::array<float, 3> mean{};
  std::array<float, 3> std{};

  int num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  // Tokens before the patches: class, distillation, register tokens.
  int prefix_tokens() const { return (class_token ? 1 : 0) + (distilled ? 1 : 0) + reg_tokens; }
  int num_tokens() const { return num_patches() + prefix_tokens(); }
  // Rows of the head's input per image: the pooled row, or the class (and
  // distillation) token's.
  int head_rows() const { return avg_pool ? 1 : (distilled ? 2 : 1); }
  bool norm_before_pool() const { return avg_pool && !fc_norm; }
  int head_dim() const { return embed_dim / num_heads; }
};

// IEEE binary16 bits -> float (exact: every half is a float).
float half_to_float(uint16_t h);

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const;
};

class Checkpoint {
 public:
  // Reads dir/config.json and dir/model.safetensors. Throws vitint::Error that
  // names the file, the tensor and the expectation on any problem: unreadable
  // or malformed files, an unsupported architecture (e.g. max or attention
  // pooling, another activation), missing, unexpected or
  // mis-shaped tensors, dtypes other than F32 / F16 / BF16, truncated data.
  static Checkpoint load(const std::string& dir);
  // Builds a checkpoint with random weights (fixed seed) for a standard timm
  // architecture name such as "deit_small_patch16_224" or
  // "vit_base_patch16_clip_224" (tiny, small, base; patch 16, 224); for speed and FP32
  // reference tests where no pretrained weights exist.
  static Checkpoint random(const std::string& architecture, uint32_t seed);

  const VitConfig& config() const { return config_; }
  // Throws vitint::Error if absent.
  const Tensor& get(const std::string& name) const;
  const std::map<std::string, Tensor>& tensors() const { return tensors_; }

 private:
  VitConfig config_;
  std::map<std::string, Tensor> tensors_;
};

// Reads the class names file (one "nXXXXXXXX name, synonyms" line per class)
// and returns the human-readable part ("tench, Tinca tinca").
std::vector<std::string> read_class_names(const std::string& path);

// A tensor shape for messages: "[197, 192]".
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace vitint::convert
