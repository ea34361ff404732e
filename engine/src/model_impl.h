// What a loaded model holds: the mapped file, its description and the
// prepared graph for one kernel path.
#pragma once
#include <memory>
#include <string>

#include "engine/src/format.h"
#include "engine/src/ops.h"
#include "vitint/vitint.h"

namespace vitint {

struct Model::Impl {
  std::shared_ptr<const format::Reader> file;
  ModelInfo info;
  kernels::Isa isa = kernels::Isa::kRef;
  engine::Graph graph;
};

}  // namespace vitint

namespace vitint::models {

// Builds the graph of an architecture family from a validated model file;
// throws vitint::Error naming the tensor or metadata key that is wrong.
using GraphBuilder = void (*)(const format::Reader& file, kernels::Isa isa, ModelInfo* info,
                              engine::Graph* graph);
// The builder registered for `family` (metadata "family"), or nullptr.
GraphBuilder find_builder(const std::string& family);

}  // namespace vitint::models
