// Reading the tensors a command is given. Conditioning files hold tensors under the names
// the loaded family's inputs have ("context", and for image-to-video "clip_fea", "y"), so
// the commands stay the same for every family. Inputs are the user's files, so each check
// names the file and tensor: a tensor must hold floats, at least one element, and only
// finite values (an integer-typed or NaN context used to run and write garbage, exit 0).
#include "commands.h"

#include <sys/stat.h>

#include "core/error.h"
#include "core/finite.h"
#include "io/output_file.h"
#include "io/safetensors.h"

namespace raylight::cli {


void check_input_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(what, " ", path, " does not exist");
  if (!S_ISREG(st.st_mode))
    fail(what, " ", path, " is ", describe_file_type(st.st_mode), ", not a safetensors file");
}

Tensor read_input_tensor(const std::string& path, const std::string& name, bool required) {
  check_input_file(path, "input file");
  auto file = SafetensorsFile::open(path);
  if (!file->has(name)) {
    if (!required) return {};
    fail("input file ", path, " has no tensor named '", name, "'");
  }
  const TensorInfo& info = file->info(name);
  const std::string what = "input file " + path + ": tensor '" + name + "' " + shape_str(info.shape);
  if (shape_numel(info.shape) == 0) fail(what, " is empty");
  Tensor t = finite_f32(file->tensor(name), what);
  file->check_intact();
  return t;
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
