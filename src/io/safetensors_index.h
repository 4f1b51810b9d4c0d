// A sharded safetensors checkpoint's index (diffusers' and transformers'
// "<name>.safetensors.index.json": {"metadata": {...}, "weight_map": {tensor: file}}), read as
// hostile input: every file must be a plain name inside the index's folder (no path
// separators, "..", or hidden names), a tensor is named once, and the JSON is size- and
// depth-limited like a safetensors header. Opening the shards and checking that each holds
// exactly the tensors the index gives it is SplitCheckpointWeights' job.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace raylight {

struct SafetensorsIndex {
  std::string path;                              // the index file
  std::string folder;                            // where its shards are
  std::vector<std::string> files;                // shard paths, sorted, each once
  std::map<std::string, std::string> weight_map;  // tensor -> shard path
};

// Reads and validates `path`; errors name the index and what is wrong.
SafetensorsIndex read_safetensors_index(const std::string& path);

// True for names ending ".safetensors.index.json" (diffusers' variant form
// "...safetensors.index.fp16.json" included).
bool is_safetensors_index_name(const std::string& path);

}  // namespace raylight
