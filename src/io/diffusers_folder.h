// Where a model argument's weights are when it names diffusers' files: a model folder
// (".../transformer/" with diffusion_pytorch_model.safetensors, or shards and their
// diffusion_pytorch_model.safetensors.index.json), a whole pipeline folder (its transformer/),
// an index file, or a single .safetensors file; and the config.json beside them, whose
// top-level numbers a family may need (diffusers files do not store a head count).
#pragma once

#include <map>
#include <string>

namespace raylight {

struct WeightFiles {
  std::string weights;  // one .safetensors file, or a .safetensors.index.json
  bool sharded = false; // weights is an index
  std::string config;   // config.json beside the weights, or ""
};

// What `path` (a file or a folder) holds. A folder must hold exactly one choice
// (diffusion_pytorch_model's index, then its single file, then the one index or the one
// .safetensors file there): several are an Error listing them, and so is none. A pipeline
// folder (model_index.json beside transformer/) or a folder holding no weights but a
// transformer/ folder stands for its transformer/.
WeightFiles find_weight_files(const std::string& path);

// config.json's top-level entries that are numbers, strings, booleans or arrays of numbers,
// as "diffusers.config.<key>" -> their JSON text (checked like any hostile JSON: 1 MiB,
// depth, unique keys). Other entries are left out.
std::map<std::string, std::string> read_diffusers_config(const std::string& path);

}  // namespace raylight
