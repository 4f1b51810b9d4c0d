// Reading the tensors a command is given. Conditioning files hold tensors under the names
// the loaded family's inputs have ("context", and for image-to-video "clip_fea", "y"), so
// the commands stay the same for every family.
#include "commands.h"

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"

namespace raylight::cli {

Tensor read_input_tensor(const std::string& path, const std::string& name, bool required) {
  if (!std::filesystem::exists(path)) fail("input file ", path, " does not exist");
  auto file = SafetensorsFile::open(path);
  if (!file->has(name)) {
    if (!required) return {};
    fail("input file ", path, " has no tensor named '", name, "'");
  }
  return file->tensor(name).to_f32();
}

Conditioning read_conditioning(const std::string& path, const DenoiserSpec& spec, bool per_prompt, bool shared) {
  Conditioning c;
  for (const ConditioningInput& in : spec.conditioning_inputs()) {
    if (in.per_prompt ? !per_prompt : !shared) continue;
    Tensor t = read_input_tensor(path, in.name, in.per_prompt && in.required);
    if (t.defined()) c[in.name] = t;
  }
  return c;
}

Conditioning with_shared(Conditioning prompt, const Conditioning& from, const DenoiserSpec& spec) {
  for (const ConditioningInput& in : spec.conditioning_inputs())
    if (auto it = from.find(in.name); !in.per_prompt && it != from.end()) prompt.emplace(in.name, it->second);
  return prompt;
}

}  // namespace raylight::cli
