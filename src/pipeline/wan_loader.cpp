#include "pipeline/wan_loader.h"

#include <filesystem>

#include "core/error.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "parallel/usp_attention.h"

namespace raylight {

LoadedWan load_wan(const std::string& model, const ParallelLayout& layout) {
  LoadedWan w;
  if (model == "tiny") {
    w.weights = wan_tiny_weights();
    w.tiny = true;
  } else {
    if (!std::filesystem::exists(model))
      fail("model file ", model, " does not exist (use --model tiny for the embedded model)");
    w.weights = std::make_unique<CheckpointWeights>(Checkpoint::open(model));
  }
  if (!looks_like_wan(*w.weights))
    fail("model ", model, " is not a Wan 2.1 DiT checkpoint (no patch_embedding / blocks tensors)");
  WanConfig config = detect_wan_config(*w.weights);
  validate_layout(layout, Runtime::world_size(), config.num_heads);
  w.groups = make_rank_groups(layout);
  w.backend = make_cpu_backend();
  w.weights->bind(*w.backend);
  w.attention = std::make_unique<UspAttention>(*w.backend, *w.groups.ulysses, *w.groups.ring);
  w.model = std::make_unique<WanModel>(config, *w.weights, *w.backend, *w.attention);
  return w;
}

}  // namespace raylight
