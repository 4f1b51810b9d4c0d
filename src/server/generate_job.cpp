// Prompt-to-video pieces of the server. The video is written by the pipeline's writer (to
// a private temporary file, since the encoders write files) and read back as the response.
#include "server/generate_job.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/finite.h"
#include "io/image/image_reader.h"
#include "io/image/image_writer.h"
#include "models/registry.h"
#include "pipeline/reference_images.h"
#include "server/client_files.h"
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

bool has_size(const nlohmann::json& params) {
  for (const char* k : {"width", "height"})
    if (params.contains(k) && !params[k].is_null()) return true;
  return false;
}

void require_file(const std::string& what, const std::string& path) {
  check_client_path(what, path, {});
  std::error_code ec;
  if (!is_embedded_model(path) && !std::filesystem::is_regular_file(path, ec))
    fail(what, " file ", path, " does not exist or is not a file");
}

}  // namespace

std::vector<Tensor> generate_images(const TensorBundle& body) {
  for (const auto& [k, v] : body.metadata) {
    (void)v;
    if (k != "request") fail("unknown metadata key '", k, "' (the generate parameters go under \"request\")");
  }
  std::vector<Tensor> images;
  for (const char* name : {"image", "last_image"}) {
    const Tensor* t = body.find(name);
    if (!t) continue;
    if (std::string(name) == "last_image" && images.empty()) fail("\"last_image\" needs \"image\" (the first frame)");
    if (!dtype_is_float(t->dtype()))
      fail("tensor '", name, "' has dtype ", dtype_name(t->dtype()), "; send a float picture in [-1, 1]");
    Tensor p = t->to_f32();
    if (p.ndim() == 4 && p.dim(0) == 1) p = p.reshape({p.dim(1), p.dim(2), p.dim(3)});
    if (p.ndim() != 3 || p.dim(0) != 3 || p.dim(1) < 1 || p.dim(2) < 1 || p.dim(1) > kMaxImageSide ||
        p.dim(2) > kMaxImageSide)
      fail("tensor '", name, "' has shape ", shape_str(t->shape()), "; a picture is [3, H, W] (RGB in [-1, 1]) with "
           "sides of 1 to ", kMaxImageSide);
    finite_f32(p, "tensor '" + std::string(name) + "'");
    images.push_back(p);
  }
  for (const auto& [name, t] : body.tensors) {
    (void)t;
    if (name != "image" && name != "last_image")
      fail("unknown tensor '", name, "' in the generate body (it takes \"image\" and \"last_image\")");
  }
  if (images.empty()) fail("a generate body with tensors carries the pictures: \"image\" is missing");
  return images;
}

nlohmann::json generate_body_json(const TensorBundle& body) {
  auto it = body.metadata.find("request");
  if (it == body.metadata.end()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail("the body's \"request\" metadata is not a JSON object");
  return j;
}

GenerateRequest parse_generate_request(const nlohmann::json& j, const DenoiserSpec& model, size_t images) {
  if (!j.is_object()) fail("a generate request is a JSON object like {\"prompt\": \"...\"}");
  static const char* own[] = {"prompt", "negative_prompt", "text_encoder", "text_encoder_2", "tokenizer", "vae",
                              "format", "fps", "clip_vision", "images", "resize"};
  static const char* sampling[] = {"width", "height", "frames", "steps", "cfg", "shift", "seed", "sampler", "guidance",
                                   "cfg_low"};
  GenerateRequest r;
  for (const auto& [k, v] : j.items()) {
    if (std::find(std::begin(sampling), std::end(sampling), k) != std::end(sampling)) r.sample_params[k] = v;
    else if (std::find(std::begin(own), std::end(own), k) == std::end(own))
      fail("unknown field \"", k, "\" in the generate request");
  }
  r.prompt = text(j, "prompt", "");
  if (r.prompt.empty()) fail("\"prompt\" must be a non-empty string");
  r.negative_prompt = text(j, "negative_prompt", "");
  const std::string embedded = model.embedded_name();
  std::vector<std::string> encoder_what;
  std::string vae_what = "VAE";
  for (const PartSlot& slot : model.parts()) {
    if (slot.kind == PartKind::TextEncoder) encoder_what.push_back(slot.what);
    if (slot.kind == PartKind::LatentCodec) vae_what = slot.what;
  }
  // One field per text-encoder slot of the family: "text_encoder", "text_encoder_2".
  const std::vector<std::string> own_encoders = embedded_parts(embedded, PartKind::TextEncoder);
  if (encoder_what.size() < 2 && j.contains("text_encoder_2"))
    fail("\"text_encoder_2\" is for models with two text encoders; ", model.variant(), " has one");
  for (size_t i = 0; i < encoder_what.size() && i < 2; ++i) {
    const char* field = i == 0 ? "text_encoder" : "text_encoder_2";
    const std::string fallback = i < own_encoders.size() ? own_encoders[i] : (i == 0 ? embedded : "");
    r.parts.text_encoders.push_back(text(j, field, fallback));
    if (r.parts.text_encoders[i].empty())
      fail("\"", field, "\" (the ", encoder_what[i], "'s file) is required with this model");
    require_file(field, r.parts.text_encoders[i]);
  }
  r.parts.codec = text(j, "vae", embedded);
  r.parts.tokenizer = text(j, "tokenizer", "");
  if (r.parts.codec.empty()) fail("\"vae\" (the ", vae_what, "'s file) is required with this model");
  require_file("vae", r.parts.codec);
  if (!r.parts.tokenizer.empty()) require_file("tokenizer", r.parts.tokenizer);
  // Image-to-video: the pictures (counted here) and, with a CLIP branch, its file.
  check_image_count(model, "the loaded model", images);
  r.parts.image_encoder = text(j, "clip_vision", "");
  bool wants_clip = false;
  for (const PartSlot& slot : model.parts()) wants_clip = wants_clip || slot.kind == PartKind::ImageEncoder;
  if (wants_clip && r.parts.image_encoder.empty())
    fail("\"clip_vision\" (the CLIP vision encoder's file, clip_vision_h.safetensors) is required with ",
         model.variant());
  if (!wants_clip && !r.parts.image_encoder.empty()) fail("\"clip_vision\" is for image-to-video models with a CLIP branch");
  if (!r.parts.image_encoder.empty()) require_file("clip_vision", r.parts.image_encoder);
  // Pictures for image families (png, webp, jpeg where built), videos for the others.
  if (model.latent_format().item_rank == 3) {
    r.format = text(j, "format", "png");
    if (r.format != "latent" && !is_image_path("picture." + r.format))
      fail("\"format\" must be png, webp", is_image_path("p.jpeg") ? ", jpeg" : "", " or latent for ", model.variant(),
           " (it makes pictures), got \"", r.format, "\"");
  } else {
    r.format = text(j, "format", "mp4");
    if (r.format != "mp4" && r.format != "webp" && r.format != "latent")
      fail("\"format\" must be mp4, webp or latent, got \"", r.format, "\"");
  }
  r.fps = model.defaults().fps;
  if (j.contains("fps") && !j["fps"].is_null()) {
    if (!j["fps"].is_number() || !(j["fps"].get<double>() > 0 && j["fps"].get<double>() <= 240))
      fail("\"fps\" must be a number in (0, 240]");
    r.fps = j["fps"].get<double>();
  }
  // Reference pictures: names checked, read for the default size (rank 0 encodes them).
  if (j.contains("resize") && !j["resize"].is_null()) {
    if (!j["resize"].is_boolean()) fail("\"resize\" must be true or false");
    r.resize_images = j["resize"].get<bool>();
  }
  if (j.contains("images") && !j["images"].is_null()) {
    const auto& list = j["images"];
    if (!list.is_array()) fail("\"images\" must be a list of picture files");
    check_reference_count(model, list.size());
    for (const auto& v : list) {
      if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 4096)
        fail("\"images\" must hold picture file paths (strings)");
      check_client_path("images", v.get<std::string>(), {});
      r.reference_images.push_back(v.get<std::string>());
    }
    if (!r.reference_images.empty() && !has_size(r.sample_params)) {
      const OutputSize first = reference_picture_size(model, r.reference_images[0], r.resize_images);
      r.sample_params["width"] = first.width;
      r.sample_params["height"] = first.height;
    }
  }
  // The sampling parameters, checked now with the family's example conditioning standing in
  // for what the prompts make (its shapes fit the family's checks: tokens, pooled vectors).
  SampleInputs stand_in;
  stand_in.params = r.sample_params;
  const SamplingDefaults d = model.defaults();
  // The size asked for (the pictures' conditioning has the latent's shape); a bad size
  // falls back to the default here and plan_sample names it.
  OutputSize size{d.width, d.height, d.frames};
  for (auto [key, field] : {std::pair<const char*, int64_t*>{"width", &size.width}, {"height", &size.height},
                            {"frames", &size.frames}})
    if (r.sample_params.contains(key) && r.sample_params[key].is_number_integer())
      *field = r.sample_params[key].get<int64_t>();
  Shape example_item;
  try {
    example_item = model.latent_shape(size);
  } catch (const Error&) {
    example_item = model.latent_shape({d.width, d.height, d.frames});
  }
  const Conditioning example = model.example_conditioning(example_item, 0);
  const std::vector<std::string> from_images = model.image_inputs().makes;
  for (const auto& in : model.conditioning_inputs()) {
    if (std::find(from_images.begin(), from_images.end(), in.name) != from_images.end()) {
      const auto it = example.find(in.name);  // made from the pictures later; shapes stand in
      if (it != example.end()) stand_in.tensors.tensors.emplace_back(in.name, it->second);
      continue;
    }
    if (in.required && !in.per_prompt && in.name != "guidance")  // guidance: a sampling parameter
      fail("generate makes a model's inputs from a prompt; ", model.variant(), " also needs '", in.name,
           "' (an image-to-video model?)");
    if (!in.per_prompt || in.width <= 0) continue;
    const auto it = example.find(in.name);
    const Tensor one = it != example.end() ? it->second : Tensor::zeros({1, in.width});
    stand_in.tensors.tensors.emplace_back(in.name, one);
    stand_in.tensors.tensors.emplace_back(negative_name(in.name), one);
  }
  SampleJob job = plan_sample(stand_in, model);
  if (job.batch != 1) fail("generate makes one output at a time");
  r.item_shape = job.item_shape;
  return r;
}

void check_generate_parts(const GenerateRequest& r) {
  for (size_t i = 0; i < r.parts.text_encoders.size(); ++i)
    check_client_part(i == 0 ? "text_encoder" : "text_encoder_2", r.parts.text_encoders[i], PartKind::TextEncoder);
  check_client_part("vae", r.parts.codec, PartKind::LatentCodec);
  if (!r.parts.image_encoder.empty()) check_client_part("clip_vision", r.parts.image_encoder, PartKind::ImageEncoder);
}

GenerateModels::GenerateModels() = default;
GenerateModels::~GenerateModels() = default;

void GenerateModels::drop() {
  text_.reset();
  codec_.reset();
  text_key_.clear();
  codec_key_.clear();
  image_key_.clear();
}

Generator& GenerateModels::parts(const GenerateRequest& r, const DenoiserSpec& spec, const std::string& model,
                                 Backend& backend) {
  codec(r.parts, spec, model, backend);
  return text(r.parts, spec, model, backend);
}

Generator& GenerateModels::pictures(const PartFiles& files, const DenoiserSpec& spec, const std::string& model,
                                    Backend& backend) {
  Generator& g = codec(files, spec, model, backend);
  if (!g.has_image_encoder() || image_key_ != files.image_encoder) {
    g.open_image_encoder(spec, model, backend, files);
    image_key_ = files.image_encoder;
  }
  return g;
}

Generator& GenerateModels::text(const PartFiles& files, const DenoiserSpec& spec, const std::string& model,
                                Backend& backend) {
  std::string key = files.tokenizer;
  for (const auto& e : files.text_encoders) key += "\n" + e;
  if (!text_ || text_key_ != key) {
    text_.reset();  // the old encoders go before the new ones load
    text_key_.clear();
    text_ = std::make_unique<Generator>(Generator::EncodeOnly{}, spec, model, backend, files);
    text_key_ = key;
  }
  return *text_;
}

Generator& GenerateModels::codec(const PartFiles& files, const DenoiserSpec& spec, const std::string& model,
                                 Backend& backend) {
  if (!codec_ || codec_key_ != files.codec) {
    codec_.reset();
    codec_key_.clear();
    codec_ = std::make_unique<Generator>(Generator::DecodeOnly{}, spec, model, backend, files);
    codec_key_ = files.codec;
  }
  return *codec_;
}

std::string GenerateModels::render(const GenerateRequest& r, const Tensor& latent, const Tensor& pixels,
                                   std::string* content_type) {
  if (r.format == "latent") {
    *content_type = "application/octet-stream";
    return encode_safetensors({{"latent", latent}});
  }
  static std::atomic<int> counter{0};
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("raylight_serve_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "." + r.format))
                               .string();
  struct Remove {
    std::string p;
    ~Remove() { std::filesystem::remove(p); }
  } cleanup{path};
  write_output(path, pixels, r.fps);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  *content_type = r.format == "mp4" ? "video/mp4" : r.format == "png" ? "image/png" : r.format == "jpeg" ? "image/jpeg" : "image/webp";
  return ss.str();
}

}  // namespace raylight::server
