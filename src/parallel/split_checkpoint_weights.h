// Weights of one model split over several safetensors files by an index (diffusers' and
// transformers' sharded checkpoints), read like CheckpointWeights: views into each shard's
// memory map, nothing copied. Opening checks the shards against the index, as hostile
// input: a tensor the index names must be in the shard it names, and every tensor of every
// shard must be one the index puts there (a tensor stored in two shards is refused). fp8
// weights take their per-tensor scale ("<layer>.scale_weight" / "<layer>.weight_scale") from
// whichever shard holds it; scale tensors and the scaled_fp8 marker are hidden from names().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "io/safetensors_index.h"
#include "parallel/weight_store.h"

namespace raylight {

class SplitCheckpointWeights final : public WeightStore {
 public:
  // `extra` joins the shards' metadata (a diffusers config's entries).
  explicit SplitCheckpointWeights(const SafetensorsIndex& index, std::map<std::string, std::string> extra = {});
  bool has(const std::string& name) const override { return where_.count(name) != 0; }
  Shape shape(const std::string& name) const override { return info(name).shape; }
  DType stored_dtype(const std::string& name) const override { return info(name).dtype; }
  std::vector<std::string> names() const override { return names_; }
  std::map<std::string, std::string> metadata() const override { return metadata_; }
  Tensor get(const std::string& name) override;
  Stored stored(const std::string& name) const override;
  float stored_scale(const std::string& name) const override;
  void read_stored(const std::string& name, size_t offset, size_t size, void* dst) const override;
  void release_stored(const std::string& name) const override;
  size_t shards() const { return files_.size(); }

 private:
  const SafetensorsFile& file_of(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const { return file_of(name).info(name); }

  std::string path_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // every stored tensor -> its shard
  std::vector<std::string> names_;       // without scales and the marker, sorted
  std::map<std::string, std::string> metadata_;
};

}  // namespace raylight
