// POST /v1/generate: a prompt to a video (or picture) on the loaded model. Rank 0 encodes the
// prompts with the family's text encoders, the ranks sample together exactly as for
// /v1/sample, and rank 0 decodes with the family's VAE and encodes the file (MP4 or animated
// WebP, or returns the latent). The pieces are the pipeline's (pipeline/generate.h), the
// same `raylight generate` runs. Only rank 0 holds the text encoder and the VAE - the other
// ranks receive the conditioning - and keeps them loaded between jobs (they go when the
// model goes, since they run on its backend).
//
// JSON: {"prompt": "...", "negative_prompt": "...", "text_encoder": "tiny" | FILE,
//        "tokenizer": FILE, "vae": "tiny" | FILE, "format": "mp4" | "webp" | "latent",
//        "fps": 16, and the sampling parameters width, height, frames, steps, cfg, shift,
//        seed, sampler, "images": [FILE, ...], "resize": true}. With an embedded model,
//        text_encoder and vae default to its parts; with reference images (Flux Kontext),
//        width and height default to the first picture's fitted size.
// Image-to-video models take pictures: the request is then a safetensors body
// (application/octet-stream) with tensors "image" (the start frame) and, for first-last-
// frame models, "last_image", each [3, H, W] in [-1, 1] (float dtypes, sides up to
// kMaxImageSide), the JSON above under the metadata key "request", and "clip_vision": FILE
// for models with a CLIP branch.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backend/backend.h"
#include "core/tensor.h"
#include "models/family.h"
#include "pipeline/generate.h"
#include "server/safetensors_body.h"

namespace raylight::server {

struct GenerateRequest {
  std::string prompt, negative_prompt;
  PartFiles parts;
  std::string format = "mp4";
  double fps = 16.0;
  nlohmann::json sample_params = nlohmann::json::object();  // for plan_sample
  Shape item_shape;  // the latent it samples (for the memory estimate)
  std::vector<Tensor> images;  // the start (and last) frame, fp32 [3, H, W]
  // "images": reference pictures (files the server reads) for models that take them (Flux
  // Kontext), "resize": fitted to the family's preferred size (default true).
  std::vector<std::string> reference_images;
  bool resize_images = true;
};

// The pictures of a generate body (the tensors "image", "last_image"), checked: names,
// [3, H, W] float, sides 1 to kMaxImageSide, finite values. Errors say what is wrong.
std::vector<Tensor> generate_images(const TensorBundle& body);
// The JSON of a generate safetensors body (its "request" metadata; {} when absent).
nlohmann::json generate_body_json(const TensorBundle& body);

// Checks the request (files exist, values in range, sampling parameters as plan_sample
// would) against the loaded model; an Error says what is wrong.
GenerateRequest parse_generate_request(const nlohmann::json& j, const DenoiserSpec& model, size_t images = 0);

// Opens the request's text encoder and VAE files (not their weights) and checks that each
// is the kind of part its field names, so a wrong path is refused before the job is queued
// rather than failing minutes later; rank 0 only (the other ranks never read them).
void check_generate_parts(const GenerateRequest& r);

// Rank 0's text encoders and VAE, loaded on first use and kept for the next job with the
// same files.
class GenerateModels {
 public:
  GenerateModels();
  ~GenerateModels();
  // Drops them (before the backend they run on goes away).
  void drop();
  // The parts for a request, checked against the model (made again when the files change):
  // the text encoders (the Generator returned) and the codec.
  Generator& parts(const GenerateRequest& r, const DenoiserSpec& spec, const std::string& model, Backend& backend);
  // The text encoders alone, and the codec alone, of `files`: the part endpoints
  // (part_jobs.h) and generate share them, so each file is loaded once.
  Generator& text(const PartFiles& files, const DenoiserSpec& spec, const std::string& model, Backend& backend);
  Generator& codec(const PartFiles& files, const DenoiserSpec& spec, const std::string& model, Backend& backend);
  // The codec with the model's image encoder beside it: what conditions on pictures.
  Generator& pictures(const PartFiles& files, const DenoiserSpec& spec, const std::string& model, Backend& backend);
  // The finished file's bytes and content type (or the latent as a safetensors body);
  // `pixels` are the decoded latent (unused for the latent format).
  std::string render(const GenerateRequest& r, const Tensor& latent, const Tensor& pixels, std::string* content_type);

 private:
  std::unique_ptr<Generator> text_, codec_;
  std::string text_key_, codec_key_, image_key_;
};

}  // namespace raylight::server
