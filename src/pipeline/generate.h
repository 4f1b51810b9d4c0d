// Prompt -> video: umT5 encodes the prompts, the Wan DiT samples latents (with the rank
// groups of the loaded model), the Wan VAE decodes them, and the video is written. Every
// file is opened and checked against the others before any minutes of work start.
#pragma once

#include <functional>
#include <string>

#include "pipeline/sample_latents.h"
#include "pipeline/wan_loader.h"

namespace raylight {

struct GenerateFiles {
  std::string model = "tiny";         // Wan DiT, or "tiny"
  std::string text_encoder = "tiny";  // umT5 safetensors, or "tiny"
  std::string tokenizer;              // optional SentencePiece .model (else spiece_model)
  std::string vae = "tiny";           // Wan 2.1 VAE, or "tiny"
};

// Finds the usual files under a ComfyUI folder (models/diffusion_models, models/text_encoders,
// models/vae); an entry already set by the user (not "tiny") is kept. Errors list what was
// found when a choice is ambiguous or missing.
GenerateFiles find_comfyui_files(const std::string& comfyui_dir, GenerateFiles given,
                                 bool model_given, bool encoder_given, bool vae_given);

struct GenerateTimings {
  double load_s = 0, encode_s = 0, sample_s = 0, decode_s = 0, write_s = 0;
};

class Generator {
 public:
  // Loads and cross-checks everything (every rank must call it: it makes rank groups).
  Generator(const GenerateFiles& files, const ParallelLayout& layout, BackendChoice device,
            WeightPlacement placement);
  ~Generator();
  const LoadedWan& wan() const { return wan_; }
  LoadedWan& wan() { return wan_; }
  // Runs the whole job; on rank 0 writes `out` (format from its extension) and returns
  // the timings; other ranks take part in sampling and return.
  GenerateTimings run(const std::string& prompt, const std::string& negative_prompt,
                      const SampleOptions& opts, const std::string& out, double fps,
                      const StepCallback& on_step = {});

 private:
  struct Parts;
  LoadedWan wan_;
  std::unique_ptr<Parts> parts_;
  double load_s_ = 0;
};

}  // namespace raylight
