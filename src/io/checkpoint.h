// A model checkpoint: one safetensors file seen through ComfyUI's conventions, so model
// loaders ask for "blocks.0.attn.q.weight" and get fp32 values whatever the file layout.
//
// - Full ComfyUI checkpoints store the diffusion model under "model.diffusion_model."
//   (next to VAE / text-encoder keys). When any key has that prefix, the prefix is stripped
//   from all names this class deals in, and keys outside it are ignored.
// - "scaled fp8" files (marker tensor "scaled_fp8") store a linear weight as fp8 plus a
//   per-tensor scale "<layer>.scale_weight" (newer files: "<layer>.weight_scale");
//   weight_f32() applies it. Scale and marker tensors are hidden from names().
// - All-in-one checkpoints (ComfyUI models/checkpoints) hold other parts under their own
//   prefixes ("text_encoders.t5xxl.transformer.", "vae.", ...): open_part() views one of
//   them, named without its prefix, from the same file.
// A tensor stored both under "model.diffusion_model." and without it is refused: which of
// the two is the model cannot be told.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace raylight {

class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);
  explicit Checkpoint(std::shared_ptr<SafetensorsFile> file);
  // The tensors under `prefix` only (a part of an all-in-one checkpoint), named without it.
  static Checkpoint open_part(const std::string& path, const std::string& prefix);
  Checkpoint(std::shared_ptr<SafetensorsFile> file, const std::string& prefix);

  const SafetensorsFile& file() const { return *file_; }
  // "" or "model.diffusion_model." (or the part's prefix given to open_part).
  std::string prefix() const { return prefix_; }
  // Logical names in file order, without scale tensors and the scaled_fp8 marker.
  std::vector<std::string> names() const { return names_; }
  // True for any stored tensor under the prefix (scale tensors included).
  bool has(const std::string& name) const;
  // The stored tensor's info (dtype as stored). Errors: "checkpoint <path>: no tensor named <name>".
  const TensorInfo& info(const std::string& name) const;
  // Zero-copy view as stored.
  Tensor stored(const std::string& name) const;
  // The value as fp32; fp8 weights with a per-tensor scale are multiplied by it. A tensor
  // stored as F32 comes back as the read-only view into the mapping (no copy): clone() it
  // before writing to it.
  Tensor weight_f32(const std::string& name) const;
  // The per-tensor scale of an fp8 weight (scale_weight / weight_scale), if it has one.
  std::optional<float> weight_scale(const std::string& name) const;
  bool scaled_fp8() const { return scaled_fp8_; }
  // "<layer>.scale_input" (or "<layer>.input_scale"); `name` may be "<layer>" or "<layer>.weight".
  std::optional<float> input_scale(const std::string& name) const;

 private:
  std::string key(const std::string& name) const;  // stored key; throws when absent
  std::optional<float> scalar(const std::string& name, const char* what) const;
  void list_names();

  std::shared_ptr<SafetensorsFile> file_;
  std::string prefix_;
  bool scaled_fp8_ = false;
  std::vector<std::string> names_;
};

}  // namespace raylight
