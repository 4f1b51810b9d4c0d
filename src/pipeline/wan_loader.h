// Turns a model argument ("tiny" or a checkpoint path) into a ready Wan model: weight
// store, detected config, backend and attention layer, owned together.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "dist/runtime.h"
#include "models/wan/wan_model.h"
#include "parallel/sequence_attention.h"
#include "parallel/weight_store.h"

namespace raylight {

struct LoadedWan {
  RankGroups groups;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<SequenceAttention> attention;
  std::unique_ptr<WanModel> model;
  bool tiny = false;
};

// "tiny" selects the embedded model; anything else is a safetensors path. The layout is
// checked against the job and the model's heads, then this rank's groups are made (every
// rank must call this).
LoadedWan load_wan(const std::string& model, const ParallelLayout& layout = {});

}  // namespace raylight
