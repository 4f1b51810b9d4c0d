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

}  // namespace raylight::cli
