// Finding a family's files in a ComfyUI installation (models/diffusion_models,
// models/text_encoders, models/vae, ...). Each family says where its parts live and how
// their files are named (DenoiserSpec::parts / denoiser_slot); this only searches.
#pragma once

#include <string>

#include "pipeline/generate.h"

namespace raylight {

struct ModelFiles {
  std::string model;  // the denoiser
  PartFiles parts;
};

// Fills the empty entries of `given` from `comfyui_dir`: the denoiser by the default
// family's file names when none is given, then every part its family needs. Errors list
// what was found when a choice is ambiguous or missing, and name the flag that decides.
ModelFiles find_comfyui_files(const std::string& comfyui_dir, ModelFiles given, const std::string& variant = "");

}  // namespace raylight
