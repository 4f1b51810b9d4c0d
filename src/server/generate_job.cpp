// Prompt-to-video pieces of the server. The video is written by io/video's writer (to a
// private temporary file, since the encoders write files) and read back as the response.
#include "server/generate_job.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/video/video_writer.h"
#include "models/t5/umt5_encoder.h"
#include "models/vae/wan_vae.h"
#include "server/safetensors_body.h"
#include "server/sample_request.h"

namespace raylight::server {
namespace {

std::string text(const nlohmann::json& j, const char* name, const std::string& fallback, size_t max = 4096) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail("\"", name, "\" must be a string");
  if (it->get<std::string>().size() > max) fail("\"", name, "\" is longer than ", max, " bytes");
  return it->get<std::string>();
}

void require_file(const std::string& what, const std::string& path) {
  std::error_code ec;
  if (path != "tiny" && !std::filesystem::is_regular_file(path, ec))
    fail(what, " file ", path, " does not exist or is not a file");
}

}  // namespace

GenerateRequest parse_generate_request(const nlohmann::json& j, const WanConfig& model, bool tiny) {
  if (!j.is_object()) fail("a generate request is a JSON object like {\"prompt\": \"...\"}");
  if (model.image_to_video()) fail("generate makes text-to-video; the loaded model is image-to-video");
  static const char* own[] = {"prompt", "negative_prompt", "text_encoder", "tokenizer", "vae", "format", "fps"};
  static const char* sampling[] = {"width", "height", "frames", "steps", "cfg", "shift", "seed", "sampler"};
  GenerateRequest r;
  for (const auto& [k, v] : j.items()) {
    if (std::find(std::begin(sampling), std::end(sampling), k) != std::end(sampling)) r.sample_params[k] = v;
    else if (std::find(std::begin(own), std::end(own), k) == std::end(own))
      fail("unknown field \"", k, "\" in the generate request");
  }
  r.prompt = text(j, "prompt", "");
  if (r.prompt.empty()) fail("\"prompt\" must be a non-empty string");
  r.negative_prompt = text(j, "negative_prompt", "");
  r.text_encoder = text(j, "text_encoder", tiny ? "tiny" : "");
  r.vae = text(j, "vae", tiny ? "tiny" : "");
  r.tokenizer = text(j, "tokenizer", "");
  if (r.text_encoder.empty()) fail("\"text_encoder\" (a umT5 safetensors file) is required with this model");
  if (r.vae.empty()) fail("\"vae\" (a Wan 2.1 VAE safetensors file) is required with this model");
  require_file("text_encoder", r.text_encoder);
  require_file("vae", r.vae);
  if (!r.tokenizer.empty()) require_file("tokenizer", r.tokenizer);
  r.format = text(j, "format", "mp4");
  if (r.format != "mp4" && r.format != "webp" && r.format != "latent")
    fail("\"format\" must be mp4, webp or latent, got \"", r.format, "\"");
  if (j.contains("fps") && !j["fps"].is_null()) {
    if (!j["fps"].is_number() || !(j["fps"].get<double>() > 0 && j["fps"].get<double>() <= 240))
      fail("\"fps\" must be a number in (0, 240]");
    r.fps = j["fps"].get<double>();
  }
  // The sampling parameters, checked now with stand-in embeddings of the right width.
  const Tensor stand_in = Tensor::zeros({1, model.text_dim});
  SamplePlan plan = plan_sample(
      {{{{"context", stand_in}, {"negative", stand_in}}, {}}, r.sample_params}, model, tiny);
  if (plan.batch != 1) fail("generate makes one video at a time");
  return r;
}

GenerateModels::GenerateModels() = default;
GenerateModels::~GenerateModels() = default;

void GenerateModels::drop() {
  t5_.reset();
  vae_.reset();
  t5_key_.clear();
  vae_key_.clear();
}

Tensor GenerateModels::encode(const GenerateRequest& r, const std::string& prompt, Backend& backend,
                              const WanConfig& dit) {
  const std::string key = r.text_encoder + "\n" + r.tokenizer;
  if (!t5_ || t5_key_ != key) {
    t5_.reset();
    t5_ = UMT5Encoder::load(r.text_encoder, backend, r.tokenizer);
    t5_key_ = key;
  }
  if (t5_->config().d_model != dit.text_dim)
    fail("text encoder ", r.text_encoder, " gives ", t5_->config().d_model, "-wide embeddings but the model takes ",
         dit.text_dim);
  if (!t5_->has_tokenizer())
    fail("text encoder ", r.text_encoder, " has no tokenizer inside; give \"tokenizer\" (a SentencePiece .model)");
  return t5_->encode_prompt(prompt);
}

std::string GenerateModels::render(const GenerateRequest& r, Backend& backend, const Tensor& latent,
                                   std::string* content_type) {
  if (r.format == "latent") {
    *content_type = "application/octet-stream";
    return encode_safetensors({{"latent", latent}});
  }
  if (!vae_ || vae_key_ != r.vae) {
    vae_.reset();
    vae_ = WanVae::load(r.vae, backend);
    vae_key_ = r.vae;
  }
  if (vae_->config().z_dim != latent.dim(0))
    fail("VAE ", r.vae, " has ", vae_->config().z_dim, " latent channels but the model makes ", latent.dim(0));
  Tensor video = vae_->decode(latent);
  static std::atomic<int> counter{0};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("raylight_serve_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "." + r.format))
                               .string();
  struct Remove {
    std::string p;
    ~Remove() { std::filesystem::remove(p); }
  } cleanup{path};
  write_video(path, video, r.fps);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  *content_type = r.format == "mp4" ? "video/mp4" : "image/webp";
  return ss.str();
}

}  // namespace raylight::server
