#include "parallel/split_checkpoint_weights.h"

#include <array>
#include <cstring>
#include <optional>

#include "core/error.h"

namespace raylight {
namespace {

constexpr std::array<const char*, 4> kScaleSuffixes = {".scale_weight", ".weight_scale", ".scale_input", ".input_scale"};

bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}
bool is_fp8(DType t) { return t == DType::F8E4M3 || t == DType::F8E5M2; }

}  // namespace

SplitCheckpointWeights::SplitCheckpointWeights(const SafetensorsIndex& index, std::map<std::string, std::string> extra)
    : path_(index.path) {
  std::map<std::string, size_t> shard_of_file;
  for (const auto& f : index.files) {
    shard_of_file[f] = files_.size();
    files_.push_back(SafetensorsFile::open(f));
  }
  for (size_t i = 0; i < files_.size(); ++i) {
    for (const TensorInfo& t : files_[i]->tensors()) {
      auto listed = index.weight_map.find(t.name);
      if (listed == index.weight_map.end())
        fail("safetensors index ", path_, " does not list tensor ", t.name, " of shard ", files_[i]->path());
      if (listed->second != index.files[i])
        fail("tensor ", t.name, " is stored in shard ", files_[i]->path(), " but the index ", path_, " puts it in ",
             listed->second, (files_[shard_of_file.at(listed->second)]->has(t.name) ? " (it is stored in both)" : ""));
      where_.emplace(t.name, i);
    }
  }
  for (const auto& [tensor, file] : index.weight_map)
    if (!where_.count(tensor)) fail("safetensors index ", path_, " puts tensor ", tensor, " in shard ", file, ", which does not hold it");
  for (const auto& [tensor, file] : index.weight_map) {
    if (tensor == "scaled_fp8") continue;
    bool is_scale = false;
    for (const char* suffix : kScaleSuffixes)
      if (ends_with(tensor, suffix) && where_.count(tensor.substr(0, tensor.size() - std::strlen(suffix)) + ".weight"))
        is_scale = true;
    if (!is_scale) names_.push_back(tensor);
  }
  for (const auto& f : files_)
    for (const auto& [k, v] : f->metadata()) metadata_[k] = v;
  for (auto& [k, v] : extra) metadata_[k] = std::move(v);
}

const SafetensorsFile& SplitCheckpointWeights::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("sharded checkpoint ", path_, ": no tensor named ", name);
  return *files_[it->second];
}

float SplitCheckpointWeights::stored_scale(const std::string& name) const {
  if (!is_fp8(stored_dtype(name)) || !ends_with(name, ".weight")) return 1.0f;
  const std::string layer = name.substr(0, name.size() - 7);
  for (const char* suffix : {".scale_weight", ".weight_scale"}) {
    const std::string key = layer + suffix;
    if (!has(key)) continue;
    const Tensor t = file_of(key).tensor(key);
    if (t.numel() != 1 || t.ndim() > 1 || !dtype_is_float(t.dtype()))
      fail("sharded checkpoint ", path_, ": weight scale tensor ", key, " must be a float scalar of shape [] or [1], got ",
           dtype_name(t.dtype()), " ", shape_str(t.shape()));
    float v = 0;
    convert_to_f32(t.dtype(), t.raw(), &v, 1);
    file_of(key).check_intact();
    return v;
  }
  return 1.0f;
}

WeightStore::Stored SplitCheckpointWeights::stored(const std::string& name) const {
  const SafetensorsFile& f = file_of(name);
  Stored s{f.tensor(name), stored_scale(name)};
  f.check_intact();
  return s;
}

Tensor SplitCheckpointWeights::get(const std::string& name) {
  Tensor w = WeightStore::get(name);
  file_of(name).check_intact();
  return w;
}

void SplitCheckpointWeights::read_stored(const std::string& name, size_t offset, size_t size, void* dst) const {
  WeightStore::read_stored(name, offset, size, dst);
  file_of(name).check_intact();  // the copy is checked after it is made
}

void SplitCheckpointWeights::release_stored(const std::string& name) const {
  const SafetensorsFile& f = file_of(name);
  f.check_intact();
  const Tensor bytes = f.tensor(name);
  f.release_pages(bytes.raw(), bytes.nbytes());
}

}  // namespace raylight
