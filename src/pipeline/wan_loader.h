// Turns a model argument ("tiny" or a checkpoint path) into a ready Wan model: weight
// store, detected config, backend and attention layer, owned together.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/backend_select.h"
#include "dist/runtime.h"
#include "models/wan/wan_model.h"
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
};

// Members are destroyed bottom-up: everything holding device memory or queued work goes
// before the backend that owns the device.
struct LoadedWan {
  RankGroups groups;
  std::unique_ptr<Backend> backend;
  // Device communicators for the sequence-parallel and FSDP groups (GPU backends only).
  std::unique_ptr<Communicator> device_ulysses, device_ring, device_fsdp;
  std::unique_ptr<WeightStore> weights;
  std::unique_ptr<SequenceAttention> attention;
  std::unique_ptr<WanModel> model;
  bool tiny = false;
};

// "tiny" selects the embedded model; anything else is a safetensors path. The layout is
// checked against the job and the model's heads, then this rank's groups are made (every
// rank must call this).
// `backend` picks where it runs (the CPU reference unless asked; the CLI asks for auto).
LoadedWan load_wan(const std::string& model, const ParallelLayout& layout = {},
                   BackendChoice backend = BackendChoice::Cpu, WeightPlacement placement = {});
// The same from weights already in hand (tests, benchmarks with random weights) and a
// backend already made.
LoadedWan load_wan(std::unique_ptr<WeightStore> weights, std::unique_ptr<Backend> backend,
                   const ParallelLayout& layout = {}, WeightPlacement placement = {});

}  // namespace raylight
