// Requests of the part endpoints (see part_jobs.h). Nothing in a body is trusted: dtypes,
// shapes, values and sizes are checked before a job is queued.
#include "server/part_jobs.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "models/registry.h"
#include "server/client_files.h"
#include "server/safetensors_body.h"

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
  check_client_path(what, path, {});
  std::error_code ec;
  if (!is_embedded_model(path) && !std::filesystem::is_regular_file(path, ec))
    fail(what, " file ", path, " does not exist or is not a file");
}

void only_fields(const nlohmann::json& j, std::initializer_list<const char*> known, const char* what) {
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (std::find_if(known.begin(), known.end(), [&](const char* n) { return k == n; }) == known.end())
      fail("unknown field \"", k, "\" in the ", what, " request");
  }
}

// The codec file of a request: "vae", else an embedded model's own.
std::string codec_file(const nlohmann::json& j, const DenoiserSpec& model) {
  std::string vae_what = "VAE";
  for (const PartSlot& slot : model.parts())
    if (slot.kind == PartKind::LatentCodec) vae_what = slot.what;
  const std::string codec = text(j, "vae", model.embedded_name());
  if (codec.empty()) fail("\"vae\" (the ", vae_what, "'s file) is required with this model");
  require_file("vae", codec);
  return codec;
}

// The metadata "request" of a VAE body (an object; {} when absent); no other metadata.
nlohmann::json body_request(const TensorBundle& b) {
  for (const auto& [k, v] : b.metadata) {
    (void)v;
    if (k != "request") fail("unknown metadata key '", k, "' (the parameters go under \"request\")");
  }
  auto it = b.metadata.find("request");
  if (it == b.metadata.end()) return nlohmann::json::object();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    fail("metadata \"request\" is not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("metadata \"request\" must be a JSON object");
  return j;
}

// The body's one tensor `name`, fp32, every value finite.
Tensor the_tensor(const TensorBundle& b, const char* name) {
  for (const auto& [n, t] : b.tensors)
    if (n != name) fail("unknown tensor '", n, "' (this endpoint takes '", name, "')");
  const Tensor* t = b.find(name);
  if (!t) fail("the body has no tensor '", name, "'");
  if (!dtype_is_float(t->dtype())) fail("tensor '", name, "' has dtype ", dtype_name(t->dtype()), "; send a float type");
  if (t->numel() == 0) fail("tensor '", name, "' is empty");
  Tensor f = t->to_f32();
  const float* v = f.f32();
  for (int64_t i = 0; i < f.numel(); ++i)
    if (!std::isfinite(v[i])) fail("tensor '", name, "' holds a NaN or infinite value (at element ", i, ")");
  return f;
}

// [item...] or [B, item...] -> [B, item...]; `rank` is the item's dimensions.
Tensor as_items(const Tensor& t, int rank, const char* name, bool* batched) {
  if (t.ndim() == rank) {
    *batched = false;
    Shape s = t.shape();
    s.insert(s.begin(), 1);
    return t.reshape(s);
  }
  if (t.ndim() != rank + 1)
    fail("tensor '", name, "' has shape ", shape_str(t.shape()), "; expected ", rank, " dimensions (or ", rank + 1,
         " with a batch first)");
  if (t.dim(0) > 64) fail("tensor '", name, "' holds a batch of ", t.dim(0), "; at most 64 items per request");
  *batched = true;
  return t;
}

Shape item_shape(const Tensor& items) { return Shape(items.shape().begin() + 1, items.shape().end()); }

}  // namespace

TextEncodeRequest parse_text_encode_request(const nlohmann::json& j, const DenoiserSpec& model) {
  if (!j.is_object()) fail("a text-encode request is a JSON object like {\"prompt\": \"...\"}");
  only_fields(j, {"prompt", "text_encoder", "text_encoder_2", "tokenizer"}, "text-encode");
  TextEncodeRequest r;
  if (!j.contains("prompt") || !j["prompt"].is_string()) fail("\"prompt\" must be a string (it may be empty)");
  r.prompt = text(j, "prompt", "");
  std::vector<std::string> encoder_what;
  for (const PartSlot& slot : model.parts())
    if (slot.kind == PartKind::TextEncoder) encoder_what.push_back(slot.what);
  if (encoder_what.empty()) fail(model.variant(), " has no text encoder");
  if (encoder_what.size() < 2 && j.contains("text_encoder_2"))
    fail("\"text_encoder_2\" is for models with two text encoders; ", model.variant(), " has one");
  const std::string embedded = model.embedded_name();
  const std::vector<std::string> own = embedded_parts(embedded, PartKind::TextEncoder);
  for (size_t i = 0; i < encoder_what.size() && i < 2; ++i) {
    const char* field = i == 0 ? "text_encoder" : "text_encoder_2";
    const std::string fallback = i < own.size() ? own[i] : (i == 0 ? embedded : "");
    r.parts.text_encoders.push_back(text(j, field, fallback));
    if (r.parts.text_encoders[i].empty())
      fail("\"", field, "\" (the ", encoder_what[i], "'s file) is required with this model");
    require_file(field, r.parts.text_encoders[i]);
  }
  r.parts.tokenizer = text(j, "tokenizer", "");
  if (!r.parts.tokenizer.empty()) require_file("tokenizer", r.parts.tokenizer);
  return r;
}

CodecRequest parse_vae_decode_body(std::string_view body, const DenoiserSpec& model) {
  const TensorBundle b = decode_safetensors(body);
  const nlohmann::json j = body_request(b);
  only_fields(j, {"vae", "tile", "spread"}, "VAE decode");
  CodecRequest r;
  r.parts.codec = codec_file(j, model);
  const LatentFormat fmt = model.latent_format();
  r.items = as_items(the_tensor(b, "latent"), fmt.item_rank, "latent", &r.batched);
  model.check_latent(item_shape(r.items), "tensor 'latent'");
  // The VAEs Raylight knows scale a latent pixel to at most 8x8 pixels and a latent frame to
  // at most 4 frames, 3 colours each.
  const Shape item = item_shape(r.items);
  double out = 3.0 * 64.0 * static_cast<double>(r.items.dim(0)) * static_cast<double>(item[item.size() - 2]) *
               static_cast<double>(item[item.size() - 1]) * 4.0;
  if (fmt.item_rank == 4) out *= 4.0 * static_cast<double>(item[1]);
  if (out > kMaxDecodedBytes)
    fail("the decoded result would take up to ", std::llround(out / (1 << 20)), " MiB; at most ",
         std::llround(kMaxDecodedBytes / (1 << 20)), " MiB per request (send fewer items or a smaller latent)");
  if (j.contains("tile") && !j["tile"].is_null()) {
    if (!j["tile"].is_string()) fail("\"tile\" must be a string like \"256x256\" (pixels)");
    r.tiles = parse_vae_tile(j["tile"].get<std::string>(), "\"tile\"");
  }
  if (j.contains("spread") && !j["spread"].is_null()) {
    if (!j["spread"].is_boolean()) fail("\"spread\" must be true or false");
    r.spread = j["spread"].get<bool>();
  }
  return r;
}

CodecRequest parse_vae_encode_body(std::string_view body, const DenoiserSpec& model) {
  const TensorBundle b = decode_safetensors(body);
  const nlohmann::json j = body_request(b);
  only_fields(j, {"vae"}, "VAE encode");
  CodecRequest r;
  r.parts.codec = codec_file(j, model);
  const LatentFormat fmt = model.latent_format();
  r.items = as_items(the_tensor(b, "pixels"), fmt.item_rank, "pixels", &r.batched);
  const Shape item = item_shape(r.items);
  if (item[0] != 3) fail("tensor 'pixels' has ", item[0], " channels; send RGB (3) first: ", shape_str(item));
  // What the VAEs take: sides in multiples of 8 (a latent pixel; the codec checks its own
  // factor too) and 4k+1 frames for the causal video VAEs. A latent the DiT samples needs
  // multiples of 16: ComfyUI's nodes crop to that.
  const int64_t h = item[item.size() - 2], w = item.back();
  if (h < 8 || w < 8 || h % 8 || w % 8)
    fail("tensor 'pixels' is ", w, "x", h, " pixels; width and height must be multiples of 8");
  if (fmt.item_rank == 4 && (item[1] - 1) % 4)
    fail("tensor 'pixels' has ", item[1], " frames; the video VAE takes 4k+1 (1, 5, 9, ...)");
  const float* v = r.items.f32();
  for (int64_t i = 0; i < r.items.numel(); ++i)
    if (v[i] < -1.001f || v[i] > 1.001f)
      fail("tensor 'pixels' holds ", v[i], " (at element ", i, "); pixels are in [-1, 1] (2 * rgb - 1)");
  return r;
}

void check_part_files(const PartFiles& parts) {
  for (size_t i = 0; i < parts.text_encoders.size(); ++i)
    check_client_part(i == 0 ? "text_encoder" : "text_encoder_2", parts.text_encoders[i], PartKind::TextEncoder);
  if (!parts.codec.empty()) check_client_part("vae", parts.codec, PartKind::LatentCodec);
}

}  // namespace raylight::server
