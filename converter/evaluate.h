// Accuracy evaluation over a labeled image list, shared by vitint-eval and
// the end-to-end tests: any classifier (integer engine or FP32 reference),
// images decoded and preprocessed on every worker thread.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "converter/dataset.h"
#include "vitint/image.h"

namespace vitint::convert {

// Writes num_classes logits for one preprocessed image. One instance per
// worker thread.
using Classifier = std::function<void(const uint8_t* image, float* logits)>;
using ClassifierFactory = std::function<Classifier()>;

struct EvalInput {
  int image_size = 224;
  double crop_pct = 0.875;
  Interpolation interpolation = Interpolation::kBicubic;
  int num_classes = 1000;
};

struct EvalResult {
  int images = 0;
  int labeled = 0;
  double top1 = 0, top5 = 0;  // percent of labeled images
  double agreement = -1;      // percent equal to the reference top-1; -1 without reference
  double seconds = 0;
  std::vector<std::array<int, 5>> predictions;  // top-5 class indices per image (-1 padded)
};

// reference_logits: nullptr, or items.size() rows of num_classes floats.
// Throws vitint::Error for a label outside [0, num_classes) (unlabeled items,
// label -1, count in no accuracy) and for unreadable images.
EvalResult evaluate(const std::vector<LabeledImage>& items, const std::string& root, const EvalInput& input,
                    const ClassifierFactory& make_classifier, const float* reference_logits, int threads,
                    bool progress);

// A classifier factory for a loaded .vti model (one Session per thread), and
// one for the FP32 reference of a checkpoint directory.
struct Engine {
  std::string name;    // "libvitint-<isa>" or "fp32-reference"
  std::string recipe;  // the model file's calibration recipe (JSON), "" for the FP32 reference
  EvalInput input;
  ClassifierFactory factory;  // owns the model it runs
};
Engine open_engine(const std::string& model_path, const std::string& isa);

}  // namespace vitint::convert
