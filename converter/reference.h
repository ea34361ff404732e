// FP32 reference forward of a timm ViT/DeiT (Eigen). It calibrates the
// quantizers and is the accuracy oracle for the integer engine.
#pragma once
#include <cstdint>
#include <vector>

#include "converter/checkpoint.h"

namespace vitint::convert {

// Places in the network where activations are observed (and where the
// integer engine has a quantizer). Tensors are row-major [rows][cols],
// rows = tokens (class token first).
enum class Site {
  kBlockInput,  // residual stream entering block b (input of norm1) [N][D]
  kLn1Out,      // norm1 output = qkv input [N][D]
  kQ,           // q, heads concatenated (head h owns columns h*dh..) [N][D], before the 1/sqrt(dh) scale
  kK,           // k [N][D]
  kV,           // v [N][D]
  kAttnLogits,  // q.k^T * dh^-0.5 for every head, rows = heads*N (head-major) [heads*N][N]
  kAttnOut,     // attention context (proj input) [N][D]
  kBlockMid,    // residual stream after the attention add (input of norm2) [N][D]
  kLn2Out,      // norm2 output = fc1 input [N][D]
  kFc1Out,      // fc1 output = GELU input [N][H]
  kGeluOut,     // GELU output = fc2 input [N][H]
  kFinalNormIn, // residual stream after the last block (input of the final norm) [N][D], block = depth
  kHeadIn,      // head input: final norm output of the class (and distillation) token, or fc_norm of the
                // patch tokens' mean [head_rows][D], block = depth
  kEmbedOut,    // pre-norm ViTs: patch + position embedding, input of norm_pre [N][D], block = depth
  kNormOut,     // average pooling after the final norm: its output, patch tokens [Np][D], block = depth
};

constexpr int kSiteCount = static_cast<int>(Site::kNormOut) + 1;

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void observe(Site site, int block, const float* data, int rows, int cols) = 0;
};

class ReferenceModel {
 public:
  explicit ReferenceModel(const Checkpoint& ckpt);
  // image: preprocessed RGB, image_size x image_size x 3, uint8 (before
  // normalization: the model's mean/std are applied here). Returns the
  // num_classes logits. Thread-safe (const).
  std::vector<float> forward(const uint8_t* image, Observer* observer = nullptr) const;
  const VitConfig& config() const;

 private:
  const Checkpoint& ckpt_;
};

}  // namespace vitint::convert
