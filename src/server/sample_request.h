// A sampling request: the body of POST /v1/sample. Tensors travel as a safetensors body;
// the parameters are a JSON object in the body's metadata under "request", so one body is
// the whole request and needs no multipart encoding.
//
// Tensors (any float dtype; a leading batch dimension of 1 is accepted where noted) are the
// loaded family's conditioning inputs (GET /v1/models lists them under "conditioning"),
// each prompt's under its name for the positive prompt and its "negative_name" for the
// negative one: e.g. `context` [tokens, text_dim] (or [1, tokens, text_dim]) and `negative`,
// plus shared inputs such as `y` and `clip_fea` of image-to-video models. Beside them:
//   latent    one item [C, ...] or a batch [B, C, ...]: the starting latent (denoise < 1),
//             else only its shape is used (ComfyUI's empty latent)
//   noise     same shape as latent: caller-supplied initial noise (ComfyUI's seeds)
// Parameters: sampler (euler | unipc | dpmpp2m), cfg, seed (used without `noise`), and either
// sigmas (an explicit decreasing list in [0, 1]) or steps + shift + denoise (the family's flow
// schedule; denoise < 1 keeps its last steps, as ComfyUI's KSampler does); without latent and
// noise: width, height, frames, batch. Defaults are the family's.
// A part of the schedule, as ComfyUI's KSamplerAdvanced samples it: start_step and end_step
// (steps of the whole schedule above; the end cut first), return_with_leftover_noise (false:
// the last sigma of a part that ends early is set to 0, as ComfyUI does), add_noise (false:
// `latent` is the sample at the part's first sigma, an earlier part's result, and no noise is
// mixed in), expert ("high" | "low": that expert of a loaded pair for every step; absent:
// the pair's boundary picks). Latents are the sampler's own x_sigma; ComfyUI's LATENT holds
// x_sigma / (1 - sigma) between its nodes, which the node pack converts.
//
// Checking happens in two stages so the HTTP thread can refuse a bad request before it is
// queued: parse_sample_body needs no model, plan_sample checks against the model's spec.
// Both run again on every rank when the job starts, and give every rank the same answer.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "dist/mesh.h"
#include "models/family.h"
#include "pipeline/sample_job.h"
#include "server/safetensors_body.h"

namespace raylight::server {

struct SampleInputs {
  TensorBundle tensors;
  nlohmann::json params = nlohmann::json::object();
};

SampleInputs parse_sample_body(std::string_view body);
// Checks a job against the loaded layout (CFG parallel needs guidance).
void check_layout(const SampleJob& job, const ParallelLayout& layout);
// The job a request asks of the loaded model; an embedded model's built-in conditioning
// stands in for missing prompt tensors.
SampleJob plan_sample(const SampleInputs& in, const DenoiserSpec& spec);
// The parameters as recorded in the result's metadata and the job status.
nlohmann::json describe_job(const SampleJob& job);

}  // namespace raylight::server
