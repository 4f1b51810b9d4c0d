#include "pipeline/model_loader.h"

#include <cstdio>

#include "core/error.h"
#include "models/registry.h"
#include "parallel/lora/merged_lora_weights.h"
#include "parallel/lora/side_lora_weights.h"
#include "parallel/offload_weights.h"
#ifdef RAYLIGHT_HAVE_NCCL
#include "dist/nccl/nccl_communicator.h"
#endif
#include "parallel/shared_weights.h"
#include "parallel/sharded_weights.h"
#include "parallel/usp_attention.h"

namespace raylight {
namespace {

// Resident weights on a device are placed now, so loading costs what it costs at load (and
// a memory cap refuses the model here) rather than in the first step.
void place_resident(std::unique_ptr<WeightStore>& weights, const WeightPlacement& placement, Backend& backend) {
  if (placement.fsdp || placement.offload || !backend.keeps_weights()) return;
  for (const auto& name : weights->names())
    if (dtype_is_float(weights->stored_dtype(name)) && shape_numel(weights->shape(name)) > 0) weights->get(name);
}

}  // namespace

LoadedModel load_model(const std::string& source, const ParallelLayout& layout, BackendChoice backend,
                       WeightPlacement placement, const std::string& variant) {
  std::unique_ptr<WeightStore> weights = open_store(source, PartKind::Denoiser);
  // The family is known before the device is touched: a wrong file fails fast.
  denoiser_spec(*weights, source, variant);
  return load_model(std::move(weights), make_backend(backend, Runtime::world_rank()), layout, placement, source,
                    variant);
}

LoadedModel load_model(std::unique_ptr<WeightStore> weights, std::unique_ptr<Backend> backend,
                       const ParallelLayout& requested, WeightPlacement placement, const std::string& source,
                       const std::string& variant) {
  LoadedModel m;
  m.source = source;
  DenoiserWeights d = as_denoiser(std::move(weights), source, variant);
  m.spec = d.spec;
  m.weights = std::move(d.weights);
  const int64_t heads = m.spec->attention_heads();
  const ParallelLayout layout = resolve_layout(requested, Runtime::world_size(), heads);
  validate_layout(layout, Runtime::world_size(), heads);
  m.groups = make_rank_groups(layout);
  m.backend = std::move(backend);
  if (placement.gpu_memory_limit) m.backend->set_memory_limit(placement.gpu_memory_limit);
  // Groups that move device memory (sequence-parallel activations, FSDP shards) need device
  // communicators on a GPU backend (NCCL), bootstrapped over the host groups.
  Communicator* ulysses = m.groups.ulysses.get();
  Communicator* ring = m.groups.ring.get();
  Communicator* shards = m.groups.world.get();
  const bool on_device = m.backend->device() != Device::CPU;
  if (on_device && (ulysses->size() > 1 || ring->size() > 1 || (placement.fsdp && shards->size() > 1))) {
#ifdef RAYLIGHT_HAVE_NCCL
    void* stream = m.backend->native_stream();
    if (!stream) fail("backend ", m.backend->name(), " cannot queue collectives; use --device cpu");
    if (ulysses->size() > 1) ulysses = (m.device_ulysses = make_nccl_communicator(*ulysses, stream, "ulysses")).get();
    if (ring->size() > 1) ring = (m.device_ring = make_nccl_communicator(*ring, stream, "ring")).get();
    // FSDP gathers queue on the transfer stream, behind the shard uploads they read.
    if (placement.fsdp && shards->size() > 1)
      shards = (m.device_fsdp = make_nccl_communicator(*shards, stream, "fsdp", m.backend->native_transfer_stream())).get();
#else
    fail("this build has no NCCL: sequence parallel and FSDP on GPUs need it");
#endif
  }
  m.base = std::shared_ptr<WeightStore>(std::move(m.weights));
  m.placement = placement;
  m.shard_group = shards;
  m.attention = std::make_unique<UspAttention>(*m.backend, *ulysses, *ring);
  std::vector<std::string> notes;
  apply_loras(m, placement.loras, &notes);
  if (Runtime::world_rank() == 0)
    for (const auto& n : notes) std::fprintf(stderr, "raylight: %s\n", n.c_str());
  return m;
}

// Every LoRA key stem the family accepts -> the weight (or rows of it) it names.
std::map<std::string, LoraTarget> lora_key_stems(const DenoiserSpec& spec, const WeightStore& weights) {
  std::map<std::string, LoraTarget> stems;
  for (const auto& name : weights.names())
    for (const auto& stem : spec.lora_stems(name)) stems.emplace(stem, LoraTarget{name});
  for (const auto& [stem, target] : spec.lora_slices())
    if (weights.has(target.weight)) stems.emplace(stem, target);
  return stems;
}


void apply_loras(LoadedModel& m, const LoraOptions& loras, std::vector<std::string>* notes) {
  if (m.low_noise && !loras.empty())
    fail("LoRAs on two-expert models are not supported yet (each expert needs its own)");
  // Plan first: a bad LoRA file leaves the loaded model as it was.
  const LoraPlan plan = loras.empty() ? LoraPlan{} : plan_loras(loras, lora_key_stems(*m.spec, *m.base), *m.base, m.spec->family());
  m.denoiser.reset();
  m.weights.reset();
  m.base->bind(*m.backend);
  for (const auto& [name, patches] : plan.patches) m.base->forget(name);
  m.placement.loras = loras;
  const WeightPlacement& placement = m.placement;
  std::unique_ptr<WeightStore> source;
  std::map<std::string, SideFactors> side;
  if (plan.patches.empty()) {
    source = std::make_unique<SharedWeights>(m.base);
  } else {
    auto merged = std::make_unique<MergedLoraWeights>(m.base, plan, loras.merge_fp8);
    side = merged->side();
    if (notes) {
      notes->push_back(std::to_string(loras.files.size()) + " LoRA file(s): " + std::to_string(merged->merged_count()) +
                       " weights merged, " + std::to_string(side.size()) + " fp8 weights with a low-rank side product");
      for (const auto& s : plan.skipped) notes->push_back("skipped (matches no weight): " + s);
    }
    source = std::move(merged);
  }
  // Each rank reads only its shards; the full source (a memory map) is dropped after.
  const DenoiserSpec& spec = *m.spec;
  const BlockOf block_of = [&spec](const std::string& name) { return spec.block_of(name); };
  if (placement.fsdp) m.weights = std::make_unique<ShardedWeights>(*source, block_of, *m.shard_group, *m.backend, placement.offload);
  else if (placement.offload) m.weights = std::make_unique<OffloadWeights>(std::move(source), block_of, *m.backend);
  else m.weights = std::move(source);
  m.weights->bind(*m.backend);
  if (!side.empty())
    m.weights = std::make_unique<LoraSideWeights>(std::move(m.weights), std::move(side), block_of, *m.backend,
                                                  placement.fsdp || placement.offload);
  m.denoiser = m.spec->make(*m.weights, *m.backend, *m.attention);
  place_resident(m.weights, placement, *m.backend);
}

void add_low_noise_expert(LoadedModel& m, const std::string& source, const std::string& variant) {
  std::unique_ptr<WeightStore> weights = open_store(source, PartKind::Denoiser);
  DenoiserWeights d = as_denoiser(std::move(weights), source, variant);
  add_low_noise_expert(m, std::move(d.weights), d.spec, source);
}

void add_low_noise_expert(LoadedModel& m, std::unique_ptr<WeightStore> weights,
                          std::shared_ptr<const DenoiserSpec> spec, const std::string& source) {
  const auto high = m.spec->expert();
  if (!high) fail(m.source, " (", m.spec->variant(), ") is not one of two experts; it takes no low-noise model");
  if (!high->high_noise)
    fail(m.source, " is the low-noise expert (", m.spec->variant(), "); give the high-noise one as --model and ",
         "this one as --model-low");
  if (!m.placement.loras.empty())
    fail("LoRAs on two-expert models are not supported yet (each expert needs its own); load ", m.source,
         " without --lora");
  const auto low = spec->expert();
  if (!low || low->high_noise || low->pair != high->pair)
    fail(source, " (", spec->variant(), ") is not the low-noise expert of ", high->pair, " that ", m.source,
         " pairs with", low && low->high_noise ? " (it is a high-noise expert: check the file names or --variant)" : "");
  if (spec->attention_heads() != m.spec->attention_heads() || spec->latent_format().channels != m.spec->latent_format().channels)
    fail(source, " does not fit ", m.source, ": the two experts differ in heads or latent channels");
  auto e = std::make_unique<LowNoiseExpert>();
  e->source = source;
  e->spec = spec;
  e->weights = std::move(weights);
  const BlockOf block_of = [s = spec.get()](const std::string& name) { return s->block_of(name); };
  if (m.placement.fsdp)
    e->weights = std::make_unique<ShardedWeights>(*e->weights, block_of, *m.shard_group, *m.backend, m.placement.offload);
  else if (m.placement.offload)
    e->weights = std::make_unique<OffloadWeights>(std::move(e->weights), block_of, *m.backend);
  e->weights->bind(*m.backend);
  e->denoiser = spec->make(*e->weights, *m.backend, *m.attention);
  place_resident(e->weights, m.placement, *m.backend);
  m.low_noise = std::move(e);
}

}  // namespace raylight
