// The lists: embedded models, denoiser families, text encoders, latent codecs. A new family
// adds its entries here and nowhere else above src/models.
#include "models/registry.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "io/checkpoint.h"
#include "models/clip/clip_text_encoder.h"
#include "models/clip/clip_vision_encoder.h"
#include "models/demo/demo_model.h"
#include "models/flux/flux_family.h"
#include "models/flux/flux_tiny.h"
#include "models/t5/umt5_text_encoder.h"
#include "models/t5/umt5_tiny.h"
#include "models/vae/flux_vae_codec.h"
#include "models/vae/flux_vae_tiny.h"
#include "models/vae/wan_vae_codec.h"
#include "models/vae/wan_vae_tiny.h"
#include "models/vae/wan22_vae_codec.h"
#include "models/vae/wan22_vae_tiny.h"
#include "models/wan/wan_family.h"
#include "models/wan/wan_tiny.h"
#include "io/diffusers_folder.h"
#include "io/safetensors_index.h"
#include "parallel/checkpoint_weights.h"
#include "parallel/split_checkpoint_weights.h"
#include "parallel/prefixed_weights.h"

namespace raylight {
namespace {

struct EmbeddedModel {
  std::string name;
  PartKind part;
  std::function<std::unique_ptr<WeightStore>()> make;
  std::string model = "";  // the embedded model this part belongs to, when not `name`
};

const std::vector<EmbeddedModel>& embedded_models() {
  static const std::vector<EmbeddedModel> list = {
      {"tiny", PartKind::Denoiser, [] { return std::unique_ptr<WeightStore>(wan_tiny_weights()); }},
      {"tiny", PartKind::TextEncoder, [] { return std::unique_ptr<WeightStore>(umt5_tiny_weights()); }},
      {"tiny", PartKind::LatentCodec, [] { return std::unique_ptr<WeightStore>(wan_vae_tiny_weights()); }},
      {"demo", PartKind::Denoiser, demo_dit_weights},
      {"demo", PartKind::TextEncoder, demo_text_encoder_weights},
      {"demo", PartKind::LatentCodec, demo_vae_weights},
      {"tiny-flux", PartKind::Denoiser, [] { return std::unique_ptr<WeightStore>(flux_tiny_weights()); }},
      {"tiny-flux", PartKind::TextEncoder, [] { return std::unique_ptr<WeightStore>(umt5_tiny_weights()); }},
      {"tiny-flux-clip", PartKind::TextEncoder, [] { return std::unique_ptr<WeightStore>(flux_tiny_clip_weights()); },
       "tiny-flux"},
      {"tiny-flux", PartKind::LatentCodec, [] { return std::unique_ptr<WeightStore>(flux_vae_tiny_weights()); }},
      {"tiny-ti2v", PartKind::Denoiser, [] { return std::unique_ptr<WeightStore>(wan_tiny_ti2v_weights()); }},
      {"tiny-ti2v", PartKind::TextEncoder, [] { return std::unique_ptr<WeightStore>(umt5_tiny_weights()); }},
      {"tiny-ti2v", PartKind::LatentCodec, [] { return std::unique_ptr<WeightStore>(wan22_vae_tiny_weights()); }},
  };
  return list;
}

struct DenoiserFamily {
  std::string name;
  std::function<bool(const WeightStore&)> matches;
  std::function<std::shared_ptr<const DenoiserSpec>(const WeightStore&, const std::string& source,
                                                    const std::string& variant)>
      spec;
  // The store under the names `spec` and the model read, where a file uses another naming
  // (Flux's diffusers names): a view, or the store itself.
  std::function<std::unique_ptr<WeightStore>(std::unique_ptr<WeightStore>, const std::string& source)> official = nullptr;
};

const std::vector<DenoiserFamily>& denoiser_families() {
  static const std::vector<DenoiserFamily> list = {
      {"Wan 2.1", wan_matches,
       [](const WeightStore& w, const std::string& s, const std::string& v) { return wan_spec(w, s, v); }},
      {"Flux.1", flux_matches, flux_spec, flux_official_names},
  };
  return list;
}

struct PartFamily {
  PartKind kind;
  std::string name;
  std::function<bool(const WeightStore&)> matches;
  // The variant after checking every tensor.
  std::function<std::string(const WeightStore&, const std::string& source)> variant;
  // The part over a store (the one matching `kind`).
  std::function<std::unique_ptr<TextEncoder>(std::unique_ptr<WeightStore>, Backend&, const std::string& source,
                                             const std::string& tokenizer)>
      text_encoder;
  std::function<std::unique_ptr<LatentCodec>(std::unique_ptr<WeightStore>, Backend&, const std::string& source)> codec;
  std::function<std::unique_ptr<ImageEncoder>(std::unique_ptr<WeightStore>, Backend&, const std::string& source)>
      image_encoder = nullptr;
};

const std::vector<PartFamily>& part_families() {
  static const std::vector<PartFamily> list = {
      {PartKind::TextEncoder, "T5", umt5_matches,
       [](const WeightStore& w, const std::string&) { return umt5_variant(w); }, make_umt5_text_encoder, nullptr},
      {PartKind::LatentCodec, "Wan 2.1", wan_vae_matches, wan_vae_variant, nullptr, make_wan_vae_codec},
      {PartKind::TextEncoder, "CLIP", clip_text_matches,
       [](const WeightStore& w, const std::string&) { return clip_text_variant(w); }, make_clip_text_encoder, nullptr},
      {PartKind::LatentCodec, "Flux", flux_vae_matches, flux_vae_variant, nullptr, make_flux_vae_codec},
      {PartKind::LatentCodec, "Wan 2.2", wan22_vae_matches, wan22_vae_variant, nullptr, make_wan22_vae_codec},
      {PartKind::ImageEncoder, "CLIP", clip_vision_matches,
       [](const WeightStore& w, const std::string&) { return clip_vision_variant(w); }, nullptr, nullptr,
       make_clip_vision_encoder},
  };
  return list;
}

// A store's tensors seen by another owner, for a temporary prefixed view.
class Borrowed final : public WeightStore {
 public:
  explicit Borrowed(const WeightStore& w) : w_(w) {}
  bool has(const std::string& n) const override { return w_.has(n); }
  Shape shape(const std::string& n) const override { return w_.shape(n); }
  DType stored_dtype(const std::string& n) const override { return w_.stored_dtype(n); }
  std::vector<std::string> names() const override { return w_.names(); }
  std::map<std::string, std::string> metadata() const override { return w_.metadata(); }
  Stored stored(const std::string& n) const override { return w_.stored(n); }
  float stored_scale(const std::string& n) const override { return w_.stored_scale(n); }
  void read_stored(const std::string& n, size_t offset, size_t size, void* dst) const override {
    w_.read_stored(n, offset, size, dst);
  }

 private:
  const WeightStore& w_;
};

// A family's tensors may sit under a key prefix (all-in-one files, other tools' exports):
// the prefix under which `matches` holds, "" when it holds without one, nullopt when never.
// Checkpoint already strips ComfyUI's "model.diffusion_model.".
std::optional<std::string> family_prefix(const WeightStore& weights,
                                         const std::function<bool(const WeightStore&)>& matches) {
  if (matches(weights)) return std::string();
  std::set<std::string> prefixes;  // up to three dots deep, from the first names
  const std::vector<std::string> names = weights.names();
  for (size_t i = 0; i < names.size() && i < 256; ++i) {
    size_t dot = names[i].find('.');
    for (int depth = 0; depth < 3 && dot != std::string::npos; ++depth, dot = names[i].find('.', dot + 1))
      prefixes.insert(names[i].substr(0, dot + 1));
  }
  for (const auto& p : prefixes)
    if (matches(PrefixedWeights(std::make_unique<Borrowed>(weights), p))) return p;
  return std::nullopt;
}

const DenoiserFamily* find_denoiser(const WeightStore& weights, std::string* prefix) {
  for (const auto& f : denoiser_families())
    if (auto p = family_prefix(weights, f.matches)) {
      *prefix = *p;
      return &f;
    }
  return nullptr;
}

const PartFamily* find_part(const WeightStore& weights, PartKind kind) {
  for (const auto& f : part_families())
    if (f.kind == kind && f.matches(weights)) return &f;
  return nullptr;
}

// "a Wan 2.1 DiT", "a T5 text encoder", or "" when nothing matches.
std::string what_it_is(const WeightStore& weights) {
  std::string prefix;
  if (const DenoiserFamily* f = find_denoiser(weights, &prefix)) return "a " + f->name + " DiT";
  for (const auto& f : part_families())
    if (f.matches(weights)) return "a " + f.name + " " + part_kind_name(f.kind);
  return "";
}

[[noreturn]] void refuse_part(const WeightStore& weights, const std::string& source, PartKind wanted) {
  const std::string is = what_it_is(weights);
  fail(source, " is not a ", part_kind_name(wanted), " this build knows",
       is.empty() ? std::string(" (its tensors match no family)") : " (it is " + is + ")");
}

}  // namespace

bool is_embedded_model(const std::string& source) {
  for (const auto& e : embedded_models())
    if (e.name == source) return true;
  return false;
}

std::vector<std::string> embedded_model_names() {
  std::vector<std::string> out;
  for (const auto& e : embedded_models())
    if (e.part == PartKind::Denoiser && std::find(out.begin(), out.end(), e.name) == out.end()) out.push_back(e.name);
  return out;
}

std::vector<std::string> embedded_parts(const std::string& model, PartKind part) {
  std::vector<std::string> out;
  for (const auto& e : embedded_models())
    if (e.part == part && (e.model.empty() ? e.name : e.model) == model) out.push_back(e.name);
  return out;
}

std::unique_ptr<WeightStore> open_store(const std::string& source, PartKind part) {
  if (is_embedded_model(source)) {
    for (const auto& e : embedded_models())
      if (e.name == source && e.part == part) return e.make();
    fail("there is no embedded ", part_kind_name(part), " named '", source, "'");
  }
  std::error_code ec;
  if (!std::filesystem::exists(source, ec))
    fail(part_kind_name(part), " file ", source, " does not exist (\"tiny\" and \"demo\" name the embedded ones)");
  // A diffusers model folder, a sharded checkpoint's index, or one file.
  const bool folder = std::filesystem::is_directory(source, ec);
  const WeightFiles files = find_weight_files(source);
  if (!std::filesystem::is_regular_file(files.weights, ec))
    fail(part_kind_name(part), " file ", files.weights, " is not a regular file");
  std::map<std::string, std::string> config;
  if (!files.config.empty()) {
    try {
      config = read_diffusers_config(files.config);
    } catch (const Error&) {
      if (folder || files.sharded) throw;  // a file given alone does not depend on a config beside it
    }
  }
  if (files.sharded) return std::make_unique<SplitCheckpointWeights>(read_safetensors_index(files.weights), config);
  return std::make_unique<CheckpointWeights>(Checkpoint::open(files.weights), config);
}

std::optional<std::string> checkpoint_part_prefix(const std::string& source, const PartSlot& slot) {
  if (slot.checkpoint_prefixes.empty() || is_embedded_model(source)) return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(source, ec) || is_safetensors_index_name(source)) return std::nullopt;
  const auto file = SafetensorsFile::open(source);
  std::vector<std::string> held;
  for (const std::string& prefix : slot.checkpoint_prefixes)
    for (const TensorInfo& t : file->tensors())
      if (t.name.rfind(prefix, 0) == 0) {
        held.push_back(prefix);
        break;
      }
  if (held.size() > 1)
    fail(source, " holds the ", slot.what, " twice, under ", held[0], " and ", held[1],
         ": which one is meant cannot be told; pass the part as a file of its own");
  if (held.empty()) return std::nullopt;
  return held[0];
}

std::unique_ptr<WeightStore> open_part(const std::string& source, const PartSlot& slot) {
  const std::optional<std::string> prefix = checkpoint_part_prefix(source, slot);
  if (!prefix) return open_store(source, slot.kind);
  return std::make_unique<CheckpointWeights>(Checkpoint::open_part(source, *prefix));
}

std::optional<Recognition> recognise(const WeightStore& weights, const std::string& source,
                                     const std::string& variant) {
  std::string prefix;
  if (const DenoiserFamily* f = find_denoiser(weights, &prefix)) {
    auto spec = denoiser_spec(weights, source, variant);
    return Recognition{PartKind::Denoiser, f->name, spec->variant(), spec->summary(), spec->variant_note()};
  }
  for (const auto& f : part_families())
    if (f.matches(weights)) return Recognition{f.kind, f.name, f.variant(weights, source), "", ""};
  return std::nullopt;
}

std::shared_ptr<const DenoiserSpec> denoiser_spec(const WeightStore& weights, const std::string& source,
                                                  const std::string& variant) {
  std::string prefix;
  const DenoiserFamily* f = find_denoiser(weights, &prefix);
  if (!f) refuse_part(weights, source, PartKind::Denoiser);
  try {
    if (prefix.empty() && !f->official) return f->spec(weights, source, variant);
    std::unique_ptr<WeightStore> view = std::make_unique<Borrowed>(weights);
    if (!prefix.empty()) view = std::make_unique<PrefixedWeights>(std::move(view), prefix);
    if (f->official) view = f->official(std::move(view), source);
    return f->spec(*view, source, variant);
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find(source) != std::string::npos) throw;
    fail(source, ": ", msg);
  }
}

DenoiserWeights as_denoiser(std::unique_ptr<WeightStore> weights, const std::string& source,
                            const std::string& variant) {
  DenoiserWeights d;
  d.spec = denoiser_spec(*weights, source, variant);
  std::string prefix;
  const DenoiserFamily* f = find_denoiser(*weights, &prefix);
  d.weights = prefix.empty() ? std::move(weights) : std::make_unique<PrefixedWeights>(std::move(weights), prefix);
  if (f->official) d.weights = f->official(std::move(d.weights), source);
  return d;
}

std::unique_ptr<TextEncoder> make_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                               const std::string& source, const std::string& tokenizer) {
  const PartFamily* f = find_part(*weights, PartKind::TextEncoder);
  if (!f) refuse_part(*weights, source, PartKind::TextEncoder);
  return f->text_encoder(std::move(weights), backend, source, tokenizer);
}

std::unique_ptr<LatentCodec> make_latent_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                               const std::string& source) {
  const PartFamily* f = find_part(*weights, PartKind::LatentCodec);
  if (!f) refuse_part(*weights, source, PartKind::LatentCodec);
  return f->codec(std::move(weights), backend, source);
}

std::unique_ptr<ImageEncoder> make_image_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source) {
  const PartFamily* f = find_part(*weights, PartKind::ImageEncoder);
  if (!f) refuse_part(*weights, source, PartKind::ImageEncoder);
  return f->image_encoder(std::move(weights), backend, source);
}

std::shared_ptr<const DenoiserSpec> default_denoiser_spec() { return wan_spec(wan_bench_presets().front().second); }

std::vector<BenchModel> bench_models() {
  std::vector<BenchModel> out;
  for (const auto& [name, config] : wan_bench_presets())
    out.push_back({name, wan_expected_tensors(config), {{"raylight.num_heads", std::to_string(config.num_heads)}},
                   [](const std::string& n) { return numbered_block(n, "blocks.") >= 0 && n.find(".weight") != std::string::npos; }});
  for (const auto& [name, config] : flux_bench_presets())
    out.push_back({name, flux_expected_tensors(config), {{"raylight.num_heads", std::to_string(config.num_heads)}},
                   [](const std::string& n) {
                     return (numbered_block(n, "double_blocks.") >= 0 || numbered_block(n, "single_blocks.") >= 0) &&
                            n.find(".weight") != std::string::npos;
                   }});
  return out;
}

std::string family_list() {
  return "Wan 2.1 DiTs (T2V 1.3B and 14B, I2V 14B), Wan 2.2 TI2V-5B, Flux.1 DiTs (dev, schnell, Kontext, Krea), T5 text "
         "encoders (umT5-XXL, T5-XXL v1.1), CLIP text encoders (CLIP-L), CLIP vision encoders (ViT-H/14), Wan 2.1, Wan 2.2 and Flux VAEs";
}

}  // namespace raylight
