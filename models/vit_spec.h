// Names shared by the converter (which writes them) and the ViT graph
// builder (which reads them). docs/model-format.md lists every tensor.
#pragma once
#include <string>

namespace vitint::models::vit {

constexpr const char* kFamily = "vit";
// Revision of the ViT tensor set inside format 1.x; bumped when the meaning
// of a tensor changes.
constexpr int kRevision = 1;
// Revision 2 adds the distilled DeiT: hparams.prefix_tokens = 2, tensors
// "dist" and "head_dist.*" (files without them stay revision 1).
constexpr int kRevisionDistilled = 2;
// Revision 3 adds the pre-norm ViT (timm's pre_norm, the CLIP towers):
// hparams.pre_norm = 1, LayerNorm "norm_pre" (quant.norm_pre) from stream
// point 2 * depth + 1 (the embedding) onto point 0.
constexpr int kRevisionPreNorm = 3;
// Revision 4 adds the token layout and pooling of timm's average-pooled ViTs:
// hparams.class_token (0 or 1), hparams.reg_tokens (tensor "reg" [R][D],
// after the class token) and hparams.pool ("token" or "avg"). With "avg" and
// hparams.fc_norm 1 (or absent): the rounded mean of the patch tokens' codes
// at stream point 2 * depth, then "norm"; with fc_norm 0: "norm" of every
// patch token onto stream point norm_out_point, the sum of their codes less
// the zero point, requantized by "pool.*" to the head's input.
constexpr int kRevisionPooling = 4;
constexpr int kLatestRevision = kRevisionPooling;

inline std::string block(int i, const std::string& what) {
  return "blocks." + std::to_string(i) + "." + what;
}
// Residual-stream quantization points: 2i = input of block i (norm1),
// 2i + 1 = after its attention add (norm2), 2 * depth = input of the final
// norm; then, where the model has them, a pre-norm ViT's embedding (input of
// norm_pre) and an average-pooled ViT's final norm output (the patch tokens,
// before the pooling, when there is no fc_norm), in that order.
inline std::string stream_alpha(int point) { return "streams." + std::to_string(point) + ".alpha"; }
inline int embed_point(int depth) { return 2 * depth + 1; }
inline int norm_out_point(int depth, bool pre_norm) { return 2 * depth + 1 + (pre_norm ? 1 : 0); }
inline int stream_points(int depth, bool pre_norm, bool norm_out) {
  return 2 * depth + 1 + (pre_norm ? 1 : 0) + (norm_out ? 1 : 0);
}

}  // namespace vitint::models::vit
