// Image lists ("FILE LABEL" lines, as ImageNet's val.txt) and a progress bar
// for the long-running tools.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "vitint/image.h"

namespace vitint::convert {

struct LabeledImage {
  std::string file;  // relative to the list's image root
  int label = -1;
};

// Reads `path`; lines are "FILE LABEL" (LABEL optional: -1). Throws
// vitint::Error naming the file and line for malformed lines.
std::vector<LabeledImage> read_image_list(const std::string& path);
// The slice [skip, skip + limit) (limit < 0: to the end), checked against the size.
std::vector<LabeledImage> slice(const std::vector<LabeledImage>& list, int skip, int limit,
                                const std::string& what);

// The model's input from image file `path`: decoded, resized and center-cropped
// (vitint::preprocess). Every error names the file, those of the
// preprocessing too (e.g. an absurd aspect ratio).
Image load_preprocessed(const std::string& path, int image_size, double crop_pct, Interpolation interp);

// Runs body(t) on `threads` threads (t in [0, threads)) and joins them. The
// first exception thrown by a body is rethrown here after calling stop() once
// (which should make the other bodies finish early, e.g. by exhausting their
// shared work counter).
void run_threads(unsigned threads, const std::function<void(unsigned)>& body, const std::function<void()>& stop);

// Progress on stderr: "label [=====>    ] 37/100  2.1 s  ETA 3.5 s". Redraws
// at most ten times a second; silent when disabled.
class Progress {
 public:
  Progress(std::string label, int total, bool enabled = true);
  void update(int done);
  void finish();

 private:
  std::string label_;
  int total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_;
  int last_tenth_ = -1;
};

}  // namespace vitint::convert
