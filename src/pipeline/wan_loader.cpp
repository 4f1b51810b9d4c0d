#include "pipeline/wan_loader.h"

#include <filesystem>

#include "core/error.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "parallel/offload_weights.h"
#ifdef RAYLIGHT_HAVE_NCCL
#include "dist/nccl/nccl_communicator.h"
#endif
#include "parallel/sharded_weights.h"
#include "parallel/usp_attention.h"

namespace raylight {

LoadedWan load_wan(const std::string& model, const ParallelLayout& layout, BackendChoice backend,
                   WeightPlacement placement) {
  std::unique_ptr<WeightStore> weights;
  if (model == "tiny") {
    weights = wan_tiny_weights();
  } else {
    if (!std::filesystem::exists(model))
      fail("model file ", model, " does not exist (use --model tiny for the embedded model)");
    weights = std::make_unique<CheckpointWeights>(Checkpoint::open(model));
  }
  if (!looks_like_wan(*weights))
    fail("model ", model, " is not a Wan 2.1 DiT checkpoint (no patch_embedding / blocks tensors)");
  LoadedWan w = load_wan(std::move(weights), make_backend(backend, Runtime::world_rank()), layout,
                         placement);
  w.tiny = model == "tiny";
  return w;
}

LoadedWan load_wan(std::unique_ptr<WeightStore> weights, std::unique_ptr<Backend> backend,
                   const ParallelLayout& requested, WeightPlacement placement) {
  LoadedWan w;
  w.weights = std::move(weights);
  if (!looks_like_wan(*w.weights))
    fail("weights are not a Wan 2.1 DiT (no patch_embedding / blocks tensors)");
  WanConfig config = detect_wan_config(*w.weights);
  const ParallelLayout layout = resolve_layout(requested, Runtime::world_size(), config.num_heads);
  validate_layout(layout, Runtime::world_size(), config.num_heads);
  w.groups = make_rank_groups(layout);
  // Each rank reads only its shards; the full source (a memory map) is dropped after.
  if (placement.fsdp) w.weights = std::make_unique<ShardedWeights>(*w.weights, *w.groups.world);
  else if (placement.offload) w.weights = std::make_unique<OffloadWeights>(std::move(w.weights));
  w.backend = std::move(backend);
  w.weights->bind(*w.backend);
  // Sequence-parallel groups move activations: on a GPU backend they need device
  // communicators (NCCL), bootstrapped over the host groups.
  Communicator* ulysses = w.groups.ulysses.get();
  Communicator* ring = w.groups.ring.get();
  if (w.backend->device() != Device::CPU && (ulysses->size() > 1 || ring->size() > 1)) {
#ifdef RAYLIGHT_HAVE_NCCL
    void* stream = w.backend->native_stream();
    if (!stream) fail("backend ", w.backend->name(), " cannot queue collectives; use --device cpu");
    if (ulysses->size() > 1) ulysses = (w.device_ulysses = make_nccl_communicator(*ulysses, stream, "ulysses")).get();
    if (ring->size() > 1) ring = (w.device_ring = make_nccl_communicator(*ring, stream, "ring")).get();
#else
    fail("this build has no NCCL: sequence parallel on GPUs needs it");
#endif
  }
  w.attention = std::make_unique<UspAttention>(*w.backend, *ulysses, *ring);
  w.model = std::make_unique<WanModel>(config, *w.weights, *w.backend, *w.attention);
  return w;
}

}  // namespace raylight
