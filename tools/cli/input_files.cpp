// Reading the tensors a command is given. Conditioning files hold tensors under the names
// the loaded family's inputs have ("context", and for image-to-video "clip_fea", "y"), so
// the commands stay the same for every family. Inputs are the user's files, so each check
// names the file and tensor: a tensor must hold floats, at least one element, and only
// finite values (an integer-typed or NaN context used to run and write garbage, exit 0).
#include "commands.h"

#include <sys/stat.h>

#include <cmath>

#include "core/error.h"
#include "io/output_file.h"
#include "io/safetensors.h"

namespace raylight::cli {

void check_finite(const Tensor& t, const std::string& what) {
  const Tensor f = t.to_f32();
  const float* p = f.f32();
  for (int64_t i = 0; i < f.numel(); ++i)
    if (!std::isfinite(p[i]))
      fail(what, " ", shape_str(t.shape()), " is not finite: element ", i, " is ", p[i]);
}

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
  const std::string what = "input file " + path + ": tensor '" + name + "'";
  if (!dtype_is_float(info.dtype))
    fail(what, " is ", dtype_name(info.dtype), "; it must hold floating-point values");
  if (shape_numel(info.shape) == 0) fail(what, " of shape ", shape_str(info.shape), " is empty");
  Tensor t = file->tensor(name).to_f32();
  file->check_intact();
  check_finite(t, what);
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
