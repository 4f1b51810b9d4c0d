// Turns a model argument (a checkpoint path or an embedded model's name) into a ready
// denoiser: weight store, the family's spec, backend, rank groups and attention layer, owned
// together. The family comes from the registry; nothing here knows which it is.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/backend_select.h"
#include "dist/runtime.h"
#include "models/family.h"
#include "parallel/lora/lora_plan.h"
#include "parallel/sequence_attention.h"
#include "parallel/weight_store.h"

namespace raylight {

// Where weights live: resident (default), sharded over every rank (FSDP), streamed from
// host memory one block ahead (offload); both together keep the shards in host memory and
// upload each block's shard before gathering it.
struct WeightPlacement {
  bool fsdp = false;
  bool offload = false;
  // Device memory cap in bytes (0: none), set before any weight is placed, so weights and
  // activations together stay under it (--gpu-memory-limit).
  size_t gpu_memory_limit = 0;
  // LoRAs applied over the weights wherever they live (--lora; parallel/lora/).
  LoraOptions loras;
};

// The low-noise expert of a two-expert model (Wan 2.2 A14B): its own weights (placed as the
// high-noise expert's) and network, on the high-noise expert's backend, rank groups and
// attention layer.
struct LowNoiseExpert {
  std::string source;
  std::shared_ptr<const DenoiserSpec> spec;
  std::shared_ptr<WeightStore> base;  // as opened, never changed (as LoadedModel::base)
  LoraOptions loras;                  // its own LoRAs (--lora-low), applied above `base`
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<Denoiser> denoiser;
};

// Members are destroyed bottom-up: everything holding device memory or queued work goes
// before the backend that owns the device.
struct LoadedModel {
  std::string source;  // the path or embedded name it was loaded from
  std::shared_ptr<const DenoiserSpec> spec;
  RankGroups groups;
  std::unique_ptr<Backend> backend;
  // Device communicators for the sequence-parallel and FSDP groups (GPU backends only).
  std::unique_ptr<Communicator> device_ulysses, device_ring, device_fsdp;
  // The weights as opened, never changed (LoRAs are applied above them), and where they
  // are placed: apply_loras builds the placement again from these.
  std::shared_ptr<WeightStore> base;
  WeightPlacement placement;
  Communicator* shard_group = nullptr;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<SequenceAttention> attention;
  std::unique_ptr<Denoiser> denoiser;
  // Set for a two-expert model: `denoiser` is then the high-noise expert.
  std::unique_ptr<LowNoiseExpert> low_noise;
};

// Opens `source` (a safetensors path or an embedded model's name), recognises its family
// (`variant` decides where tensors cannot), checks the layout against the job and the
// model's heads, and makes this rank's groups (every rank must call it).
// `backend` picks where it runs (the CPU reference unless asked; the CLI asks for auto).
LoadedModel load_model(const std::string& source, const ParallelLayout& layout = {},
                       BackendChoice backend = BackendChoice::Cpu, WeightPlacement placement = {},
                       const std::string& variant = "");
// The same from weights already in hand (tests, benchmarks with random weights) and a
// backend already made; `source` names them in messages.
LoadedModel load_model(std::unique_ptr<WeightStore> weights, std::unique_ptr<Backend> backend,
                       const ParallelLayout& layout = {}, WeightPlacement placement = {},
                       const std::string& source = "the weights", const std::string& variant = "");

// Adds the low-noise expert to a loaded high-noise expert (every rank must call it): the
// two must name the same pair, and `model` must be the high-noise one. Its weights are placed
// as `model`'s (resident, FSDP shards, offload) with its own `loras` above them (the
// high-noise expert's are placement.loras); `low_spec` is the spec of `weights`.
void add_low_noise_expert(LoadedModel& model, const std::string& source, const std::string& variant = "",
                          const LoraOptions& loras = {});
void add_low_noise_expert(LoadedModel& model, std::unique_ptr<WeightStore> weights,
                          std::shared_ptr<const DenoiserSpec> low_spec, const std::string& source,
                          const LoraOptions& loras = {});
// Every LoRA key stem `spec`'s family accepts for `weights` -> the weight (or rows) it names.
std::map<std::string, LoraTarget> lora_key_stems(const DenoiserSpec& spec, const WeightStore& weights);
// Replaces the model's LoRAs (none: the base model) on every rank together: the placement
// and the denoiser are made again from the base weights (re-read, never un-merged), so a
// model whose LoRAs were removed computes bit for bit what it did before any was applied.
// Lines describing what was applied go to `notes` when given.
// On a two-expert model this is the high-noise expert's list; the low-noise expert has its own.
void apply_loras(LoadedModel& model, const LoraOptions& loras, std::vector<std::string>* notes = nullptr);
// The low-noise expert's LoRAs (refused on a one-model family unless empty).
void apply_low_noise_loras(LoadedModel& model, const LoraOptions& loras, std::vector<std::string>* notes = nullptr);
// Both experts' lists, each planned before either changes (a file that does not fit one
// expert leaves both as they were); `low` must be empty for a one-model family.
void apply_pair_loras(LoadedModel& model, const LoraOptions& high, const LoraOptions& low,
                      std::vector<std::string>* notes = nullptr);

}  // namespace raylight
