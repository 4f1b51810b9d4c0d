// Flux.1 as a family behind the seam: dev and schnell told apart by the guidance_in tensors;
// dev, Kontext and Krea have the same tensors, so the file name (or --variant) names them.
// Latents are images [16, H/8, W/8] in ComfyUI's "Flux" format; the shift grows with the
// image's token count as the official schedule's mu does.
#include "models/flux/flux_family.h"

#include <cctype>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/finite.h"
#include "models/common/variant_choice.h"
#include "models/flux/flux_diffusers.h"
#include "models/flux/flux_lora_names.h"
#include "models/flux/flux_model.h"
#include "models/flux/flux_products.h"
#include "models/flux/flux_references.h"
#include "models/flux/kontext_resolution.h"
#include "sampling/noise.h"

namespace raylight {
namespace {

constexpr int64_t kMaxTextTokens = 512;

std::vector<VariantName> variant_names(const FluxConfig& c) {
  if (!c.guidance_embed) return {{"flux1-schnell", "Flux.1 schnell", {"schnell"}}};
  return {{"flux1-dev", "Flux.1 dev", {"dev"}},
          {"flux1-kontext-dev", "Flux.1 Kontext dev", {"kontext"}},
          {"flux1-krea-dev", "Flux.1 Krea dev", {"krea"}}};
}

// [1, a...] -> [a...]; finite values only.
Tensor checked(const std::string& name, const Tensor& given) {
  Tensor t = finite_f32(given, "tensor '" + name + "'");
  if (t.ndim() >= 2 && t.dim(0) == 1) t = t.reshape(Shape(t.shape().begin() + 1, t.shape().end()));
  return t;
}

class FluxSpec final : public DenoiserSpec {
 public:
  FluxSpec(FluxConfig c, std::string variant, std::string note, std::string embedded, bool diffusers_names = false)
      : c_(std::move(c)), variant_(std::move(variant)), note_(std::move(note)), embedded_(std::move(embedded)),
        diffusers_names_(diffusers_names) {}

  std::string family() const override { return "Flux.1"; }
  std::string variant() const override { return variant_; }
  std::string variant_note() const override { return note_; }
  std::string summary() const override {
    std::ostringstream os;
    os << "hidden " << c_.hidden << ", " << c_.num_heads << " heads x " << c_.head_dim() << ", mlp " << c_.mlp_hidden
       << ", " << c_.depth << " double + " << c_.depth_single << " single blocks, context " << c_.context_in
       << ", pooled " << c_.vec_in << (c_.guidance_embed ? ", guidance input" : ", no guidance input");
    if (diffusers_names_) os << ", diffusers names";
    return os.str();
  }
  int64_t attention_heads() const override { return c_.num_heads; }
  int64_t head_dim() const override { return c_.head_dim(); }
  int64_t sequence_tokens(const Shape& x) const override { return x.at(1) / 2 * (x.at(2) / 2) + kMaxTextTokens; }
  int64_t context_tokens() const override { return 0; }  // text joins the sequence: no cross-attention

  SamplingDefaults defaults() const override {
    SamplingDefaults d;
    d.width = 1024;
    d.height = 1024;
    d.frames = 1;
    d.steps = c_.guidance_embed ? 20 : 4;
    d.cfg = 1.0;  // distilled: one pass per step
    d.shift = c_.guidance_embed ? default_shift({c_.latent_channels, 128, 128}) : 1.0;
    d.guidance = c_.guidance_embed ? 3.5 : 0.0;
    d.sampler = SamplerKind::Euler;
    return d;
  }

  // The official schedule's mu, linear in the image's token count from 0.5 at 256 tokens to
  // 1.15 at 4096, is a flow shift of exp(mu). schnell samples unshifted.
  double default_shift(const Shape& item) const override {
    if (!c_.guidance_embed) return 1.0;
    const double tokens = static_cast<double>(item.at(1) / 2 * (item.at(2) / 2));
    const double m = (1.15 - 0.5) / (4096.0 - 256.0);
    return std::exp(m * tokens + (0.5 - m * 256.0));
  }

  LatentFormat latent_format() const override {
    LatentFormat f;
    f.channels = c_.latent_channels;
    f.item_rank = 3;
    f.comfyui_name = "Flux";
    f.scale_factor = 0.3611;
    f.shift_factor = 0.1159;
    return f;
  }

  Shape latent_shape(const OutputSize& o) const override {
    if (o.frames != 1) fail(variant_, " makes images: frames must be 1, got ", o.frames);
    if (o.width <= 0 || o.height <= 0 || o.width % 16 || o.height % 16)
      fail("width and height must be positive multiples of 16, got ", o.width, "x", o.height);
    return {c_.latent_channels, o.height / 8, o.width / 8};
  }

  void check_latent(const Shape& x, const std::string& what) const override {
    if (x.size() != 3 || x[0] != c_.latent_channels || x[1] < 2 || x[2] < 2 || x[1] % 2 || x[2] % 2)
      fail(what, " has shape ", shape_str(x), "; expected [", c_.latent_channels,
           ", height, width] with height and width even");
  }

  std::vector<ConditioningInput> conditioning_inputs() const override {
    std::vector<ConditioningInput> in = {
        {"context", true, true, c_.context_in, shape_str({kMaxTextTokens, c_.context_in}).insert(1, "tokens <= ")},
        {"pooled", true, true, c_.vec_in, shape_str({c_.vec_in})}};
    in[0].pad_tokens = text_tokens();  // T5 padded as the official sampling code pads
    if (c_.guidance_embed) in.push_back({"guidance", false, true, 1, "[1]"});
    // Kontext reference latents, shared by both prompts; listed for schnell too, so a
    // reference given to it is read and refused by name rather than ignored.
    for (int i = 0; i < kMaxFluxReferences; ++i)
      in.push_back({reference_name(i), false, false, 0, "[" + std::to_string(c_.latent_channels) + ", h, w]"});
    return in;
  }

  Conditioning check_conditioning(const Conditioning& given, const Shape& /*item*/) const override {
    Conditioning out;
    for (const auto& [name, t] : given) {
      if (name == "context") {
        Tensor x = checked(name, t);
        if (x.ndim() != 2 || x.dim(1) != c_.context_in || x.dim(0) < 1 || x.dim(0) > kMaxTextTokens)
          fail("tensor 'context' has shape ", shape_str(t.shape()), "; expected [tokens, ", c_.context_in,
               "] (or [1, tokens, ", c_.context_in, "]) with 1 to ", kMaxTextTokens, " tokens");
        out[name] = x;
      } else if (name == "pooled") {
        Tensor x = checked(name, t);
        if (x.numel() != c_.vec_in || x.ndim() != 1)
          fail("tensor 'pooled' has shape ", shape_str(t.shape()), "; expected [", c_.vec_in, "] (or [1, ",
               c_.vec_in, "])");
        out[name] = x;
      } else if (name == "guidance" && c_.guidance_embed) {
        Tensor x = checked(name, t);
        if (x.numel() != 1) fail("tensor 'guidance' has shape ", shape_str(t.shape()), "; expected [1]");
        out[name] = x.reshape({1});
      } else if (reference_index(name) >= 0) {
        if (!c_.guidance_embed)
          fail("tensor '", name, "': reference images are for dev-family models (Flux.1 Kontext dev); ", variant_,
               " takes none");
        out[name] = checked_reference(name, t, c_.latent_channels);
      } else {
        fail("tensor '", name, "' is not an input of ", variant_, " (it takes context, pooled",
             c_.guidance_embed ? ", guidance, reference.0 .. reference.7)" : "; guidance is for dev models)");
      }
    }
    check_references(out);
    for (const auto& in : conditioning_inputs())
      if (in.required && !out.count(in.name)) fail("tensor '", in.name, "' ", in.shape, " is required by ", variant_);
    return out;
  }

  Conditioning example_conditioning(const Shape& /*item*/, uint64_t seed) const override {
    Conditioning c{{"context", gaussian_noise({kMaxTextTokens, c_.context_in}, seed)},
                   {"pooled", gaussian_noise({c_.vec_in}, seed + 1)}};
    if (c_.guidance_embed) c["guidance"] = Tensor::from_vector({1}, {3.5f});
    return c;
  }

  // Kontext's guidance default (2.5, the official sampling code's) where references are given.
  double default_guidance(const Conditioning& c) const override {
    return c_.guidance_embed && c.count(reference_name(0)) ? 2.5 : defaults().guidance;
  }

  // Resized: the preferred Kontext resolution (FluxKontextImageScale); kept: cut to
  // multiples of 16 pixels (an even latent, as the 2x2 tokens need).
  OutputSize reference_size(const OutputSize& picture, bool resize) const override {
    if (resize) {
      const PictureSize k = kontext_resolution({picture.width, picture.height});
      return {k.width, k.height, 1};
    }
    if (picture.width < 16 || picture.height < 16)
      fail("a reference picture of ", picture.width, "x", picture.height,
           " is smaller than 16x16 pixels; give a larger one or let it be resized");
    return {picture.width / 16 * 16, picture.height / 16 * 16, 1};
  }

  int block_of(const std::string& weight) const override {
    const int d = numbered_block(weight, "double_blocks.");
    return d >= 0 ? d : numbered_block(weight, "single_blocks.", static_cast<int>(c_.depth));
  }

  // diffusers' names (PEFT, SimpleTuner, OneTrainer LoRAs) besides ComfyUI's generic forms.
  std::vector<std::string> lora_stems(const std::string& weight) const override {
    std::vector<std::string> out = DenoiserSpec::lora_stems(weight);
    for (auto& s : flux_diffusers_lora_stems(weight)) out.push_back(std::move(s));
    return out;
  }
  std::vector<std::pair<std::string, LoraTarget>> lora_slices() const override { return flux_lora_slices(c_); }

  std::vector<PartSlot> parts() const override {
    // All-in-one prefixes as ComfyUI's Flux model config reads them (text_encoder_key_prefix
    // "text_encoders." + clip_l/t5xxl ".transformer.", vae_key_prefix "vae."); the base
    // config's "first_stage_model." is accepted for the VAE too.
    return {{PartKind::TextEncoder, "T5-XXL text encoder", "text_encoders", {"t5xxl"}, {"text_encoders.t5xxl.transformer."}},
            {PartKind::TextEncoder, "CLIP-L text encoder", "text_encoders", {"clip_l"}, {"text_encoders.clip_l.transformer."}},
            {PartKind::LatentCodec, "Flux VAE", "vae", {"ae.safetensors"}, {"vae.", "first_stage_model."}}};
  }
  std::string embedded_name() const override { return embedded_; }
  PartSlot denoiser_slot() const override {
    return {PartKind::Denoiser, variant_ + " model", "diffusion_models", {"flux1"}};
  }

  std::unique_ptr<Denoiser> make(WeightStore& weights, Backend& backend, SequenceAttention& attention) const override {
    return std::make_unique<FluxModel>(c_, weights, backend, attention);
  }
  // The T5 tokens at the length the text encoder pads them to.
  std::vector<DenoiserProduct> products(const Shape& item, const SegmentRows& rows) const override {
    return flux_products(c_, text_tokens(), item.at(1) / 2 * (item.at(2) / 2), rows);
  }

 private:
  // T5 tokens as the official sampling code pads them: 512 (dev), 256 (schnell).
  int64_t text_tokens() const { return c_.guidance_embed ? 512 : 256; }
  // References are numbered from 0 without gaps, and their tokens together are bounded.
  static void check_references(const Conditioning& c) {
    int64_t tokens = 0;
    int count = 0;
    for (const auto& [name, t] : c) {
      const int i = reference_index(name);
      if (i < 0) continue;
      ++count;
      tokens += t.dim(1) / 2 * (t.dim(2) / 2);  // each side <= kMaxReferenceSide: no overflow
    }
    for (int i = 0; i < count; ++i)
      if (!c.count(reference_name(i)))
        fail("tensor '", reference_name(i), "' is missing: ", count, " reference(s) are numbered reference.0 .. reference.",
             count - 1);
    if (tokens > kMaxReferenceTokens)
      fail("the reference latents hold ", tokens, " tokens together; at most ", kMaxReferenceTokens,
           " are taken (", kMaxReferenceTokens * 256, " image pixels)");
  }

  FluxConfig c_;
  std::string variant_;
  std::string note_;
  std::string embedded_;
  bool diffusers_names_ = false;  // read through models/flux/flux_diffusers
};

}  // namespace

bool flux_matches(const WeightStore& weights) { return looks_like_flux(weights) || is_diffusers_flux(weights); }

std::unique_ptr<WeightStore> flux_official_names(std::unique_ptr<WeightStore> weights, const std::string& source) {
  if (!is_diffusers_flux(*weights)) return weights;
  return diffusers_flux_view(std::move(weights), source);
}

std::shared_ptr<const DenoiserSpec> flux_spec(const WeightStore& weights, const std::string& source,
                                              const std::string& variant) {
  const FluxConfig config = detect_flux_config(weights);
  const std::vector<VariantName> names = variant_names(config);
  const VariantChoice choice = choose_variant(names, source, variant, config.variant());
  // A released shape is named by its variant; a custom one keeps its shape in the name.
  const bool custom = config.variant().find("custom") != std::string::npos;
  const std::string name = custom ? config.variant() : choice.chosen->description;
  const auto meta = weights.metadata();
  const auto embedded = meta.find("raylight.embedded");
  const auto naming = meta.find("raylight.names");
  return std::make_shared<FluxSpec>(config, name, choice.note, embedded == meta.end() ? "" : embedded->second,
                                    naming != meta.end() && naming->second == "diffusers");
}

std::vector<std::pair<std::string, FluxConfig>> flux_bench_presets() {
  FluxConfig dev;
  dev.hidden = 3072, dev.num_heads = 24, dev.mlp_hidden = 12288, dev.depth = 19, dev.depth_single = 38;
  return {{"flux-dev", dev}};
}

}  // namespace raylight
