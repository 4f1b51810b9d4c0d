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
// family's file names when none is given (models/diffusion_models, files or diffusers model
// folders, then all-in-one files in models/checkpoints, then pipeline folders in
// models/diffusers), then every part its family needs: the ones an all-in-one checkpoint
// holds from it, the others from their folders. Errors list what was found when a choice
// is ambiguous or missing, and name the flag that decides.
ModelFiles find_comfyui_files(const std::string& comfyui_dir, ModelFiles given, const std::string& variant = "");

// Whether `model` (a path) is an all-in-one checkpoint holding any part `spec` needs.
bool holds_parts(const std::string& model, const DenoiserSpec& spec);
// Fills the empty part entries of `given` (one text-encoder entry per slot) with `given.model`
// where it holds that slot's part; the others stay empty.
ModelFiles checkpoint_parts(ModelFiles given, const DenoiserSpec& spec);

}  // namespace raylight
