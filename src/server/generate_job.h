// POST /v1/generate: prompt to video on the loaded model. Rank 0 encodes the prompts with
// umT5, the ranks sample together exactly as for /v1/sample, and rank 0 decodes the latent
// with the Wan VAE and encodes the video (MP4 or animated WebP, or returns the latent).
// Only rank 0 holds the text encoder and the VAE - the other ranks receive the embeddings -
// and keeps them loaded between jobs (they go when the model goes, since they run on its
// backend).
//
// JSON: {"prompt": "...", "negative_prompt": "...", "text_encoder": "tiny" | FILE,
//        "tokenizer": FILE, "vae": "tiny" | FILE, "format": "mp4" | "webp" | "latent",
//        "fps": 16, and the sampling parameters width, height, frames, steps, cfg, shift,
//        seed, sampler}. With the tiny model, text_encoder and vae default to "tiny".
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "backend/backend.h"
#include "core/tensor.h"
#include "models/wan/wan_config.h"

namespace raylight {
class UMT5Encoder;
class WanVae;
}  // namespace raylight

namespace raylight::server {

struct GenerateRequest {
  std::string prompt, negative_prompt;
  std::string text_encoder, tokenizer, vae;
  std::string format = "mp4";
  double fps = 16.0;
  nlohmann::json sample_params = nlohmann::json::object();  // for plan_sample
};

// Checks the request (files exist, values in range, sampling parameters as plan_sample
// would) against the loaded model; an Error says what is wrong.
GenerateRequest parse_generate_request(const nlohmann::json& j, const WanConfig& model, bool tiny_model);

// Rank 0's text encoder and VAE, loaded on first use and kept for the next job with the
// same files.
class GenerateModels {
 public:
  GenerateModels();
  ~GenerateModels();
  // Drops both (before the backend they run on goes away).
  void drop();
  // Prompt embeddings [tokens, d_model]; checks d_model against the DiT's text width.
  Tensor encode(const GenerateRequest& r, const std::string& text, Backend& backend, const WanConfig& dit);
  // The finished video's bytes and content type.
  std::string render(const GenerateRequest& r, Backend& backend, const Tensor& latent, std::string* content_type);

 private:
  std::unique_ptr<UMT5Encoder> t5_;
  std::string t5_key_;
  std::unique_ptr<WanVae> vae_;
  std::string vae_key_;
};

}  // namespace raylight::server
