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

namespace {

LoraPlan plan_for(const DenoiserSpec& spec, const WeightStore& base, const LoraOptions& loras) {
  return loras.empty() ? LoraPlan{} : plan_loras(loras, lora_key_stems(spec, base), base, spec.family());
}

struct PlacedDenoiser {
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Denoiser> denoiser;
};

// `base` with the planned LoRAs applied above it (merged, or as side products on fp8
// weights), placed as `placement` says, and the network over it. The caller has dropped the
// previous placement of `base` (weights a LoRA patches are read again from the file).
PlacedDenoiser place_denoiser(const std::shared_ptr<WeightStore>& base, const DenoiserSpec& spec, const LoraPlan& plan,
                              const LoraOptions& loras, const LoadedModel& m, const std::string& who,
                              std::vector<std::string>* notes) {
  base->bind(*m.backend);
  for (const auto& [name, patches] : plan.patches) base->forget(name);
  const WeightPlacement& placement = m.placement;
  std::unique_ptr<WeightStore> source;
  std::map<std::string, SideFactors> side;
  if (plan.patches.empty()) {
    source = std::make_unique<SharedWeights>(base);
  } else {
    auto merged = std::make_unique<MergedLoraWeights>(base, plan, loras.merge_fp8);
    side = merged->side();
    if (notes) {
      notes->push_back(who + std::to_string(loras.files.size()) + " LoRA file(s): " +
                       std::to_string(merged->merged_count()) + " weights merged, " + std::to_string(side.size()) +
                       " fp8 weights with a low-rank side product");
      for (const auto& s : plan.skipped) notes->push_back(who + "skipped (matches no weight): " + s);
    }
    source = std::move(merged);
  }
  // Each rank reads only its shards; the full source (a memory map) is dropped after.
  const BlockOf block_of = [&spec](const std::string& name) { return spec.block_of(name); };
  PlacedDenoiser out;
  if (placement.fsdp)
    out.weights = std::make_unique<ShardedWeights>(*source, block_of, *m.shard_group, *m.backend, placement.offload);
  else if (placement.offload)
    out.weights = std::make_unique<OffloadWeights>(std::move(source), block_of, *m.backend);
  else
    out.weights = std::move(source);
  out.weights->bind(*m.backend);
  if (!side.empty())
    out.weights = std::make_unique<LoraSideWeights>(std::move(out.weights), std::move(side), block_of, *m.backend,
                                                    placement.fsdp || placement.offload);
  out.denoiser = spec.make(*out.weights, *m.backend, *m.attention);
  place_resident(out.weights, placement, *m.backend);
  return out;
}

const char* const kLowWho = "low-noise expert: ";

void apply_planned(LoadedModel& m, const LoraPlan& plan, const LoraOptions& loras, std::vector<std::string>* notes) {
  m.denoiser.reset();
  m.weights.reset();
  m.placement.loras = loras;
  PlacedDenoiser p = place_denoiser(m.base, *m.spec, plan, loras, m, m.low_noise ? "high-noise expert: " : "", notes);
  m.weights = std::move(p.weights);
  m.denoiser = std::move(p.denoiser);
}

void apply_planned_low(LoadedModel& m, const LoraPlan& plan, const LoraOptions& loras, std::vector<std::string>* notes) {
  LowNoiseExpert& e = *m.low_noise;
  e.denoiser.reset();
  e.weights.reset();
  e.loras = loras;
  PlacedDenoiser p = place_denoiser(e.base, *e.spec, plan, loras, m, kLowWho, notes);
  e.weights = std::move(p.weights);
  e.denoiser = std::move(p.denoiser);
}

void refuse_low_on_one_model(const LoadedModel& m, const LoraOptions& low) {
  if (!m.low_noise && !low.empty())
    fail(m.source, " is one model; low-noise expert LoRAs are for two-expert models");
}

}  // namespace

void apply_loras(LoadedModel& m, const LoraOptions& loras, std::vector<std::string>* notes) {
  // Plan first: a bad LoRA file leaves the loaded model as it was.
  apply_planned(m, plan_for(*m.spec, *m.base, loras), loras, notes);
}

void apply_low_noise_loras(LoadedModel& m, const LoraOptions& loras, std::vector<std::string>* notes) {
  refuse_low_on_one_model(m, loras);
  if (m.low_noise) apply_planned_low(m, plan_for(*m.low_noise->spec, *m.low_noise->base, loras), loras, notes);
}

void apply_pair_loras(LoadedModel& m, const LoraOptions& high, const LoraOptions& low, std::vector<std::string>* notes) {
  refuse_low_on_one_model(m, low);
  // Both planned before either changes: a file that does not fit one expert leaves both.
  const LoraPlan high_plan = plan_for(*m.spec, *m.base, high);
  const LoraPlan low_plan = m.low_noise ? plan_for(*m.low_noise->spec, *m.low_noise->base, low) : LoraPlan{};
  apply_planned(m, high_plan, high, notes);
  if (m.low_noise) apply_planned_low(m, low_plan, low, notes);
}

void add_low_noise_expert(LoadedModel& m, const std::string& source, const std::string& variant,
                          const LoraOptions& loras) {
  std::unique_ptr<WeightStore> weights = open_store(source, PartKind::Denoiser);
  DenoiserWeights d = as_denoiser(std::move(weights), source, variant);
  add_low_noise_expert(m, std::move(d.weights), d.spec, source, loras);
}

void add_low_noise_expert(LoadedModel& m, std::unique_ptr<WeightStore> weights,
                          std::shared_ptr<const DenoiserSpec> spec, const std::string& source,
                          const LoraOptions& loras) {
  const auto high = m.spec->expert();
  if (!high) fail(m.source, " (", m.spec->variant(), ") is not one of two experts; it takes no low-noise model");
  if (!high->high_noise)
    fail(m.source, " is the low-noise expert (", m.spec->variant(), "); give the high-noise one as --model and ",
         "this one as --model-low");
  const auto low = spec->expert();
  if (!low || low->high_noise || low->pair != high->pair)
    fail(source, " (", spec->variant(), ") is not the low-noise expert of ", high->pair, " that ", m.source,
         " pairs with", low && low->high_noise ? " (it is a high-noise expert: check the file names or --variant)" : "");
  if (spec->attention_heads() != m.spec->attention_heads() || spec->latent_format().channels != m.spec->latent_format().channels)
    fail(source, " does not fit ", m.source, ": the two experts differ in heads or latent channels");
  auto e = std::make_unique<LowNoiseExpert>();
  e->source = source;
  e->spec = spec;
  e->base = std::shared_ptr<WeightStore>(std::move(weights));
  const LoraPlan plan = plan_for(*spec, *e->base, loras);
  e->loras = loras;
  std::vector<std::string> notes;
  PlacedDenoiser p = place_denoiser(e->base, *spec, plan, loras, m, kLowWho, &notes);
  e->weights = std::move(p.weights);
  e->denoiser = std::move(p.denoiser);
  m.low_noise = std::move(e);
  if (Runtime::world_rank() == 0)
    for (const auto& n : notes) std::fprintf(stderr, "raylight: %s\n", n.c_str());
}

}  // namespace raylight
