// libvitint public API: load a quantized ViT model file and run it
// integer-only. No exception crosses this API: every call that can fail
// returns a Status.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>


namespace vitint {

// Interleaved RGB, 8 bits per channel, row-major (height rows of width*3 bytes).
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

enum class Interpolation { kBilinear, kBicubic };
class Status {
 public:
  Status() = default;
  static Status error(std::string message) { return Status(std::move(message)); }
  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }
  explicit operator bool() const { return ok(); }

 private:
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}
  bool failed_ = false;
  std::string message_;
};

struct ModelInfo {
  std::string architecture;  // timm name, e.g. "deit_tiny_patch16_224"
  std::string tag;           // e.g. "fb_in1k"
  int image_size = 0;
  int patch_size = 0;
  int embed_dim = 0;
  int depth = 0;
  int num_heads = 0;
  int mlp_hidden = 0;
  int num_classes = 0;
  double crop_pct = 0;
  Interpolation interpolation = Interpolation::kBicubic;
  int attention_bits = 8;  // 8: uniform 8-bit probabilities, 4: Log-Int-Softmax
  int residual_bits = 16;  // bits of the residual stream (8 or 16)
  std::string recipe;      // calibration recipe, JSON text
  std::string converter_version;
  std::vector<std::string> labels;  // class names (may be empty)
};

struct LoadOptions {
  // Kernel path: "" = best for this CPU (or $VITINT_ISA), else "ref", "avx2",
  // "avxvnni", "avx512vnni" or "amx" (refused if the CPU lacks it).
  std::string isa;
};

// An immutable model, shareable across threads.
class Model {
 public:
  static Status load(const std::string& path, const LoadOptions& options,
                     std::shared_ptr<const Model>* out);
  ~Model();
  const ModelInfo& info() const;
  // The kernel path this model was prepared for.
  std::string isa() const;
  // timm's eval preprocessing for this model, as classify() does it (resize
  // the shorter side, center crop; Pillow's integer arithmetic): writes one
  // input of Session::run, image_size * image_size * 3 bytes (HWC), to `out`.
  // Refused: an image whose resized longer side would exceed 32768 pixels.
  Status preprocess(const Image& image, uint8_t* out) const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct Prediction {
  int class_index = -1;
  std::string label;
  float probability = 0;  // softmax of the logits
  float logit = 0;
};

struct SessionOptions {
  int max_batch = 1;
  // Threads that run() splits each operator over (the calling thread is one
  // of them; the others are started by create()). Results are bit-identical
  // for every value. In [1, 256].
  int threads = 1;
  // Time every operator of run() (two clock reads per operator); see
  // Session::profile.
  bool profile = false;
};

// Time spent in one operator of the network over all run() calls so far.
struct OpProfile {
  std::string name;  // e.g. "blocks.3.fc1"
  std::string kind;  // e.g. "linear + GELU", "layernorm", "attention"
  int64_t runs = 0;
  double total_ms = 0;
};

// Per-thread state (scratch arena). Use one Session per thread.
class Session {
 public:
  static Status create(std::shared_ptr<const Model> model, const SessionOptions& options,
                       std::unique_ptr<Session>* out);
  ~Session();

  // Any RGB image (see Model::preprocess): timm's eval preprocessing, then
  // the network. `out` gets the top_k predictions (see top_k()); it is empty
  // after a failure.
  Status classify(const Image& image, int top_k, std::vector<Prediction>* out);
  // Preprocessed images: `batch` RGB uint8 images of image_size x image_size
  // (HWC, as Model::preprocess writes them, one after the other). Writes
  // batch * num_classes logits.
  Status run(const uint8_t* images, int batch, float* logits);
  // Top-k of one logit vector (num_classes floats): min(k, num_classes)
  // predictions, none for k <= 0 or null logits.
  std::vector<Prediction> top_k(const float* logits, int k) const;
  // With SessionOptions::profile: every operator in execution order with its
  // accumulated wall time (all threads of the session work on one operator at
  // a time); empty otherwise.
  std::vector<OpProfile> profile() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Decodes a JPEG/PNG/BMP/PPM/TGA/GIF file into RGB.
Status load_image(const std::string& path, Image* out);

// The library version, "major.minor.patch".
const char* version();

}  // namespace vitint
