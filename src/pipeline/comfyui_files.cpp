#include "pipeline/comfyui_files.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "models/registry.h"

namespace raylight {
namespace fs = std::filesystem;

namespace {

// The .safetensors files in `dir` whose lower-case names hold every one of `parts`.
std::vector<std::string> candidates(const fs::path& dir, const std::vector<std::string>& parts) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (e.path().extension() != ".safetensors") continue;
    bool all = true;
    for (const auto& p : parts) all = all && name.find(p) != std::string::npos;
    if (all) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Of several VAE files whose names fit (wan_2.1_vae and wan2.2_vae both hold "wan" and
// "vae"), those whose latent channels are the DiT's; all of them where none or every one is.
std::vector<std::string> with_channels(const std::vector<std::string>& found, int64_t channels) {
  std::vector<std::string> same;
  auto cpu = make_cpu_backend();
  for (const auto& path : found) {
    try {
      if (make_latent_codec(open_store(path, PartKind::LatentCodec), *cpu, path)->latent_channels() == channels)
        same.push_back(path);
    } catch (const Error&) {
      // Damaged or foreign files stay in the list, so the error names them all.
    }
  }
  return same.empty() ? found : same;
}

std::string pick(const fs::path& models, const PartSlot& slot, const char* flag, int64_t channels = 0) {
  const fs::path dir = models / slot.comfyui_folder;
  auto found = candidates(dir, slot.name_parts);
  if (found.size() > 1 && channels > 0) found = with_channels(found, channels);
  if (found.size() == 1) return found[0];
  std::string list, pattern;
  for (const auto& f : found) list += "\n  " + f;
  for (const auto& p : slot.name_parts) pattern += "*" + p;
  if (found.empty()) fail("no ", slot.what, " found in ", dir.string(), " (looked for ", pattern, "*.safetensors); pass ", flag);
  fail("several ", slot.what, " files in ", dir.string(), ", choose one with ", flag, ":", list);
}

// Sub-folders of `dir`: diffusers model folders (a transformer/ folder's files, or a whole
// pipeline's, as ComfyUI's models/diffusers holds them) are candidates like files.
std::vector<std::string> folders_in(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (fs::is_directory(e.path(), ec)) out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The files and model folders in `dir` that are denoisers this build runs (of any family).
std::vector<std::string> denoisers_in(const fs::path& dir, const std::string& variant) {
  std::vector<std::string> found;
  std::vector<std::string> paths = candidates(dir, {});
  for (auto& f : folders_in(dir)) paths.push_back(std::move(f));
  for (const auto& path : paths) {
    try {
      const auto r = recognise(*open_store(path, PartKind::Denoiser), path, variant);
      if (r && r->part == PartKind::Denoiser) found.push_back(path);
    } catch (const Error&) {
      // Damaged or foreign files are not candidates; naming one with --model reports why.
    }
  }
  return found;
}

// The DiT when --model is not given: the one file or diffusers model folder in
// models/diffusion_models (or, when none is there, models/checkpoints: all-in-one files, then
// models/diffusers: pipeline folders) that is a denoiser this build runs (of any family), or
// among several the one named as the default family's; otherwise the error lists them.
std::string pick_denoiser(const fs::path& models, const std::string& variant) {
  fs::path dir = models / "diffusion_models";
  std::vector<std::string> found = denoisers_in(dir, variant);
  for (const char* next : {"checkpoints", "diffusers"}) {
    if (!found.empty()) break;
    dir = models / next;
    found = denoisers_in(dir, variant);
  }
  if (found.size() == 1) return found[0];
  if (found.size() > 1) {
    const auto named = candidates(dir, default_denoiser_spec()->denoiser_slot().name_parts);
    if (named.size() == 1) return named[0];
  }
  std::string list;
  for (const auto& f : found) list += "\n  " + f;
  if (found.empty())
    fail("no DiT this build runs found in ", (models / "diffusion_models").string(), ", ",
         (models / "checkpoints").string(), " or ", (models / "diffusers").string(), " (", family_list(),
         "); pass --model");
  fail("several DiT files in ", dir.string(), ", choose one with --model:", list);
}

}  // namespace

bool holds_parts(const std::string& model, const DenoiserSpec& spec) {
  for (const PartSlot& slot : spec.parts())
    if (checkpoint_part_prefix(model, slot)) return true;
  return false;
}

ModelFiles checkpoint_parts(ModelFiles f, const DenoiserSpec& spec) {
  size_t encoder = 0;
  for (const PartSlot& slot : spec.parts()) {
    const bool held = checkpoint_part_prefix(f.model, slot).has_value();
    if (slot.kind == PartKind::TextEncoder) {
      if (f.parts.text_encoders.size() <= encoder) f.parts.text_encoders.resize(encoder + 1);
      if (f.parts.text_encoders[encoder].empty() && held) f.parts.text_encoders[encoder] = f.model;
      ++encoder;
    } else if (slot.kind == PartKind::LatentCodec && f.parts.codec.empty() && held) {
      f.parts.codec = f.model;
    }
  }
  return f;
}

ModelFiles find_comfyui_files(const std::string& root, ModelFiles f, const std::string& variant) {
  const fs::path models = fs::path(root) / "models";
  std::error_code ec;
  if (!fs::is_directory(models, ec)) fail("--comfyui-dir ", root, " has no models/ folder");
  if (f.model.empty()) f.model = pick_denoiser(models, variant);
  const auto spec = denoiser_spec(*open_store(f.model, PartKind::Denoiser), f.model, variant);
  f = checkpoint_parts(std::move(f), *spec);
  size_t encoder = 0;
  for (const PartSlot& slot : spec->parts()) {
    if (slot.kind == PartKind::TextEncoder) {
      if (f.parts.text_encoders.size() <= encoder) f.parts.text_encoders.resize(encoder + 1);
      if (f.parts.text_encoders[encoder].empty())
        f.parts.text_encoders[encoder] = pick(models, slot, encoder == 0 ? "--text-encoder" : "--text-encoder-2");
      ++encoder;
    } else if (slot.kind == PartKind::LatentCodec && f.parts.codec.empty()) {
      f.parts.codec = pick(models, slot, "--vae", spec->latent_format().channels);
    } else if (slot.kind == PartKind::ImageEncoder && f.parts.image_encoder.empty()) {
      f.parts.image_encoder = pick(models, slot, "--clip-vision");
    }
  }
  return f;
}

}  // namespace raylight
