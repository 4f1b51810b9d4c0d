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
  w.backend = std::move(backend);
  if (placement.gpu_memory_limit) w.backend->set_memory_limit(placement.gpu_memory_limit);
  // Groups that move device memory (sequence-parallel activations, FSDP shards) need device
  // communicators on a GPU backend (NCCL), bootstrapped over the host groups.
  Communicator* ulysses = w.groups.ulysses.get();
  Communicator* ring = w.groups.ring.get();
  Communicator* shards = w.groups.world.get();
  const bool on_device = w.backend->device() != Device::CPU;
  if (on_device && (ulysses->size() > 1 || ring->size() > 1 || (placement.fsdp && shards->size() > 1))) {
#ifdef RAYLIGHT_HAVE_NCCL
    void* stream = w.backend->native_stream();
    if (!stream) fail("backend ", w.backend->name(), " cannot queue collectives; use --device cpu");
    if (ulysses->size() > 1) ulysses = (w.device_ulysses = make_nccl_communicator(*ulysses, stream, "ulysses")).get();
    if (ring->size() > 1) ring = (w.device_ring = make_nccl_communicator(*ring, stream, "ring")).get();
    // FSDP gathers queue on the transfer stream, behind the shard uploads they read.
    if (placement.fsdp && shards->size() > 1)
      shards = (w.device_fsdp = make_nccl_communicator(*shards, stream, "fsdp", w.backend->native_transfer_stream())).get();
#else
    fail("this build has no NCCL: sequence parallel and FSDP on GPUs need it");
#endif
  }
  // Each rank reads only its shards; the full source (a memory map) is dropped after.
  if (placement.fsdp) w.weights = std::make_unique<ShardedWeights>(*w.weights, *shards, *w.backend, placement.offload);
  else if (placement.offload) w.weights = std::make_unique<OffloadWeights>(std::move(w.weights), *w.backend);
  w.weights->bind(*w.backend);
  w.attention = std::make_unique<UspAttention>(*w.backend, *ulysses, *ring);
  w.model = std::make_unique<WanModel>(config, *w.weights, *w.backend, *w.attention);
  // Resident weights on a device are placed now, so loading costs what it costs at load
  // (and a memory cap refuses the model here) rather than in the first step.
  if (!placement.fsdp && !placement.offload && w.backend->keeps_weights())
    for (const auto& name : w.weights->names())
      if (dtype_is_float(w.weights->stored_dtype(name)) && shape_numel(w.weights->shape(name)) > 0)
        w.weights->get(name);
  return w;
}

}  // namespace raylight
