#include "io/diffusers_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/json_checks.h"
#include "io/safetensors_index.h"

namespace raylight {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSingle = "diffusion_pytorch_model.safetensors";
constexpr const char* kIndex = "diffusion_pytorch_model.safetensors.index.json";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

std::string config_beside(const fs::path& weights) {
  const fs::path c = weights.parent_path() / "config.json";
  return is_file(c) ? c.string() : "";
}

// The one weight choice in `dir`, or "" when it holds none.
std::string weights_in(const fs::path& dir) {
  if (is_file(dir / kIndex)) return (dir / kIndex).string();
  if (is_file(dir / kSingle)) return (dir / kSingle).string();
  std::vector<std::string> indexes, files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!is_file(e.path())) continue;
    const std::string name = e.path().filename().string();
    if (is_safetensors_index_name(name)) indexes.push_back(e.path().string());
    else if (e.path().extension() == ".safetensors") files.push_back(e.path().string());
  }
  if (ec) fail("model folder ", dir.string(), " cannot be listed: ", ec.message());
  std::vector<std::string>& found = indexes.empty() ? files : indexes;
  if (found.size() == 1) return found[0];
  if (found.empty()) return "";
  std::sort(found.begin(), found.end());
  std::string list;
  for (const auto& f : found) list += "\n  " + f;
  fail("model folder ", dir.string(), " holds several ", indexes.empty() ? "weight files" : "safetensors indexes",
       "; pass the one meant as --model:", list);
}

}  // namespace

WeightFiles find_weight_files(const std::string& path) {
  std::error_code ec;
  WeightFiles w;
  if (fs::is_directory(path, ec)) {
    // A whole pipeline folder (model_index.json, transformer/, vae/, ...): its denoiser, even
    // where other files sit beside them (FLUX.1-dev's root also holds flux1-dev.safetensors
    // and ae.safetensors).
    const fs::path transformer = fs::path(path) / "transformer";
    const bool pipeline = is_file(fs::path(path) / "model_index.json") && fs::is_directory(transformer, ec);
    w.weights = weights_in(pipeline ? transformer : fs::path(path));
    if (w.weights.empty() && fs::is_directory(transformer, ec)) w.weights = weights_in(transformer);
    if (w.weights.empty())
      fail("model folder ", path, " holds no ", kSingle, ", no ", kIndex, " and no .safetensors file");
  } else {
    w.weights = path;
  }
  w.sharded = is_safetensors_index_name(w.weights);
  w.config = config_beside(w.weights);
  return w;
}

std::map<std::string, std::string> read_diffusers_config(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  if (ec || size > (1u << 20)) fail("model config ", path, " is not a file of at most 1 MiB");
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (json_nesting_depth(text, 8) > 8) fail("model config ", path, ": nested deeper than 8 levels");
  nlohmann::json j;
  std::string duplicate;
  try {
    if (!json_parse_unique_keys(text, &j, &duplicate)) fail("model config ", path, " names '", duplicate, "' twice");
  } catch (const nlohmann::json::exception& e) {
    fail("model config ", path, " is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("model config ", path, " is not a JSON object");
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : j.items()) {
    bool keep = v.is_number() || v.is_string() || v.is_boolean();
    if (v.is_array()) keep = std::all_of(v.begin(), v.end(), [](const nlohmann::json& x) { return x.is_number(); });
    if (keep) out["diffusers.config." + key] = v.dump();
  }
  return out;
}

}  // namespace raylight
