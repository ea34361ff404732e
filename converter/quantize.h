// Turns a checkpoint and its calibration into the integer model file.
#pragma once
#include <string>
#include <vector>

#include "converter/calibrate.h"
#include "converter/checkpoint.h"
#include "engine/src/format.h"

namespace vitint::convert {

struct ConvertInfo {
  Recipe recipe;
  int calib_count = 0;
  std::string calib_list;              // as given by the user
  std::vector<std::string> labels;     // class names, may be empty
};

// Fills `out` with the metadata and every tensor the ViT graph builder reads
// (models/vit.cpp; the list is in docs/model-format.md).
void quantize_vit(const Checkpoint& ckpt, const Calibration& cal, const ConvertInfo& info,
                  format::Writer* out);

}  // namespace vitint::convert
