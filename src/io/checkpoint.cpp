// Checkpoint naming and dequantisation. Everything is decided once in the constructor
// (prefix, scaled-fp8 marker, the logical name list) so lookups stay simple map hits into
// the SafetensorsFile; values are only converted when weight_f32() is asked for.
#include "io/checkpoint.h"

#include <array>
#include <cstring>

#include "core/error.h"

namespace raylight {
namespace {

constexpr const char* kPrefix = "model.diffusion_model.";
constexpr std::array<const char*, 4> kScaleSuffixes = {".scale_weight", ".weight_scale",
                                                      ".scale_input", ".input_scale"};

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}
std::string layer_of(const std::string& name) {
  return ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : name;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  return Checkpoint(SafetensorsFile::open(path));
}

Checkpoint Checkpoint::open_part(const std::string& path, const std::string& prefix) {
  return Checkpoint(SafetensorsFile::open(path), prefix);
}

Checkpoint::Checkpoint(std::shared_ptr<SafetensorsFile> file) : file_(std::move(file)) {
  if (!file_) fail("checkpoint: no file");
  const std::string prefixed_marker = std::string(kPrefix) + "scaled_fp8";
  for (const TensorInfo& t : file_->tensors())
    if (starts_with(t.name, kPrefix) && t.name != prefixed_marker) { prefix_ = kPrefix; break; }
  // The DiT twice (prefixed and bare): either could be the model, so neither is taken.
  if (!prefix_.empty())
    for (const TensorInfo& t : file_->tensors())
      if (starts_with(t.name, prefix_) && t.name != prefixed_marker && file_->has(t.name.substr(prefix_.size())))
        fail("checkpoint ", file_->path(), " stores ", t.name.substr(prefix_.size()), " twice, with and without ",
             prefix_, ": it holds two models in one file");
  scaled_fp8_ = file_->has("scaled_fp8") || file_->has(prefixed_marker);
  list_names();
}

Checkpoint::Checkpoint(std::shared_ptr<SafetensorsFile> file, const std::string& prefix)
    : file_(std::move(file)), prefix_(prefix) {
  if (!file_) fail("checkpoint: no file");
  scaled_fp8_ = file_->has("scaled_fp8") || file_->has(prefix_ + "scaled_fp8");
  list_names();
  if (names_.empty()) fail("checkpoint ", file_->path(), " has no tensors under ", prefix_);
}

void Checkpoint::list_names() {
  for (const TensorInfo& t : file_->tensors()) {
    if (!starts_with(t.name, prefix_)) continue;
    std::string name = t.name.substr(prefix_.size());
    if (name == "scaled_fp8") continue;
    // A scale tensor is one named "<layer><suffix>" next to a "<layer>.weight".
    bool is_scale = false;
    for (const char* suffix : kScaleSuffixes) {
      if (ends_with(name, suffix)) {
        std::string layer = name.substr(0, name.size() - std::strlen(suffix));
        if (file_->has(prefix_ + layer + ".weight")) is_scale = true;
      }
    }
    if (!is_scale) names_.push_back(std::move(name));
  }
}

std::string Checkpoint::key(const std::string& name) const {
  std::string k = prefix_ + name;
  if (!file_->has(k)) fail("checkpoint ", file_->path(), ": no tensor named ", name);
  return k;
}

bool Checkpoint::has(const std::string& name) const { return file_->has(prefix_ + name); }

const TensorInfo& Checkpoint::info(const std::string& name) const {
  return file_->info(key(name));
}

Tensor Checkpoint::stored(const std::string& name) const { return file_->tensor(key(name)); }

// The value of a one-element float tensor `name`, if it exists.
std::optional<float> Checkpoint::scalar(const std::string& name, const char* what) const {
  if (!has(name)) return std::nullopt;
  Tensor t = stored(name);
  if (t.numel() != 1 || t.ndim() > 1 || !dtype_is_float(t.dtype()))
    fail("checkpoint ", file_->path(), ": ", what, " tensor ", name, " must be a float scalar "
         "of shape [] or [1], got ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
  float v = 0;
  convert_to_f32(t.dtype(), t.raw(), &v, 1);
  return v;
}

std::optional<float> Checkpoint::weight_scale(const std::string& name) const {
  Tensor t = stored(name);
  if (t.dtype() != DType::F8E4M3 && t.dtype() != DType::F8E5M2) return std::nullopt;
  if (!ends_with(name, ".weight")) return std::nullopt;
  const std::string layer = layer_of(name);
  std::optional<float> scale = scalar(layer + ".scale_weight", "weight scale");
  return scale ? scale : scalar(layer + ".weight_scale", "weight scale");
}

Tensor Checkpoint::weight_f32(const std::string& name) const {
  Tensor t = stored(name);
  if (t.dtype() != DType::F8E4M3 && t.dtype() != DType::F8E5M2) return t.to_f32();
  std::optional<float> scale = weight_scale(name);
  Tensor out = Tensor::empty(t.shape(), DType::F32);  // never aliases the mapping
  convert_to_f32(t.dtype(), t.raw(), out.f32(), static_cast<size_t>(t.numel()));
  if (scale) {
    float* p = out.f32();
    for (int64_t i = 0, n = out.numel(); i < n; ++i) p[i] *= *scale;
  }
  return out;
}

std::optional<float> Checkpoint::input_scale(const std::string& name) const {
  const std::string layer = layer_of(name);
  std::optional<float> s = scalar(layer + ".scale_input", "input scale");
  return s ? s : scalar(layer + ".input_scale", "input scale");
}

}  // namespace raylight
