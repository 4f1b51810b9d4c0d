// A sampling request: the body of POST /v1/sample. Tensors travel as a safetensors body;
// the parameters are a JSON object in the body's metadata under "request", so one body is
// the whole request and needs no multipart encoding.
//
// Tensors (any float dtype; a leading batch dimension of 1 is accepted where noted):
//   context   [tokens, text_dim] or [1, tokens, text_dim]   positive text embeddings
//   negative  same                                          needed when cfg != 1
//   latent    [16, F, H, W] or [B, 16, F, H, W]   the starting latent (denoise < 1), else
//                                                 only its shape is used (ComfyUI's empty latent)
//   noise     same shape as latent                caller-supplied initial noise (ComfyUI's seeds)
//   y, clip_fea                                   image-to-video models only
// Parameters: sampler (euler | unipc | dpmpp2m), cfg, seed (used without `noise`), and either
// sigmas (an explicit decreasing list in [0, 1]) or steps + shift + denoise (Raylight's flow
// schedule; denoise < 1 keeps its last steps, as ComfyUI's KSampler does); without latent and
// noise: width, height, frames, batch.
//
// Checking happens in two stages so the HTTP thread can refuse a bad request before it is
// queued: parse_sample_body needs no model, plan_sample checks against the model's config.
// Both run again on every rank when the job starts, and give every rank the same answer.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "dist/mesh.h"
#include "models/wan/wan_config.h"
#include "sampling/samplers.h"
#include "server/safetensors_body.h"

namespace raylight::server {

struct SampleInputs {
  TensorBundle tensors;
  nlohmann::json params = nlohmann::json::object();
};

struct SamplePlan {
  Tensor context, negative, clip_fea;  // fp32 [tokens, dim]; negative undefined when cfg == 1
  Tensor y;                            // fp32 [C, F, H, W] (image-to-video) or undefined
  Tensor latent, noise;                // fp32 [B, 16, F, H, W] or undefined (zeros / seeded)
  Shape item_shape;                    // [16, F, H, W]
  int64_t batch = 1;
  bool batched_output = false;         // answer [B, 16, ...] rather than [16, ...]
  std::vector<double> sigmas;
  double cfg = 5.0;
  SamplerKind sampler = SamplerKind::UniPC;
  uint64_t seed = 0;

  int steps() const { return static_cast<int>(sigmas.size()) - 1; }
  // The parameters as recorded in the result's metadata and the job status.
  nlohmann::json describe() const;
};

SampleInputs parse_sample_body(std::string_view body);
// Checks a plan against the loaded layout (CFG parallel needs guidance).
void check_layout(const SamplePlan& plan, const ParallelLayout& layout);
// `tiny`: the embedded model, whose built-in text embeddings stand in for missing ones.
SamplePlan plan_sample(const SampleInputs& in, const WanConfig& config, bool tiny);

}  // namespace raylight::server
