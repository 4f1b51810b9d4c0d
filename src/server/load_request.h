// A model load request: which model and how the server's ranks are arranged for it. The
// rank count is fixed when `raylight serve` starts (mpirun owns the ranks), so a request
// picks a layout within it - Ulysses, Ring, CFG parallel, data parallel - and the weight
// placement (FSDP, offload). The same checks run in the HTTP thread (to answer 400 before
// anything changes) and on every rank before it unloads the current model.
//
// JSON: {"model": "tiny" | "/path/to/dit.safetensors", "variant": NAME (where tensors cannot
//        tell), "ulysses": N, "ring": N, "cfg_parallel": bool, "dp": N, "fsdp": bool,
//        "offload": bool, "gpu_memory_limit_gib": number (a cap on each rank's GPU memory, as
//        --gpu-memory-limit), "loras": [{"path": FILE, "strength": S}], "lora_merge": bool,
//        "lora_skip_unmatched": bool (server/lora_request.h),
//        "model_low": the low-noise expert of a two-expert model (Wan 2.2 A14B; the high-noise
//        one is "model"), "variant_low", "attention": "cudnn" | "own" | "fp8" (the CUDA
//        attention kernel, as --attention; absent: the server's default)}
// A high-noise expert may load alone (ComfyUI splits the steps between two samplers, one
// model each); with "model_low" the server samples the pair, switching at its boundary.
// Without "ulysses" and "ring" the loader splits the sequence itself (Ulysses as far as the
// heads allow, Ring for the rest), as the command line does.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "dist/mesh.h"
#include "models/family.h"
#include "pipeline/model_loader.h"

namespace raylight::server {

struct LoadPlan {
  std::string model;
  std::string variant;  // as requested ("" when tensors decide)
  ParallelLayout layout;  // resolved: no automatic split left
  WeightPlacement placement;
  std::shared_ptr<const DenoiserSpec> spec;
  std::string model_low, variant_low;  // a two-expert model's low-noise expert, or ""
  LoraOptions loras_low;               // its LoRAs ("loras_low"; placement.loras: the model's)
  std::string attention;  // "cudnn" | "own" | "fp8", or "" (the server's default)
};

// Checks a request against `world_size` ranks and the model's heads (reading only the
// checkpoint's header); an Error says what is wrong and, for layouts, what would fit.
LoadPlan plan_load(const nlohmann::json& request, int world_size);

// Describes a loaded model for clients (GET /v1/models, /v1/health): family, variant, its
// conditioning inputs, latent format (ComfyUI's name and conversion), defaults, layout.
nlohmann::json describe_model(const LoadPlan& plan, const std::string& backend);

}  // namespace raylight::server
