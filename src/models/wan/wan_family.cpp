// Wan 2.1's answers to the seam's questions. The DiT is WanModel; this file only describes it.
#include "models/wan/wan_family.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/finite.h"
#include "models/common/first_frame.h"
#include "models/common/variant_choice.h"
#include "models/vae/wan22_vae_config.h"
#include "models/vae/wan_vae_config.h"
#include "models/wan/wan_image_condition.h"
#include "models/wan/wan_model.h"
#include "models/wan/wan_products.h"
#include "models/wan/wan_tiny.h"
#include "sampling/noise.h"
#include "sampling/schedule.h"

namespace raylight {
namespace {

// [1, a, b] -> [a, b], fp32; checks [tokens, width] with 1..max_tokens tokens.
Tensor tokens_tensor(const std::string& name, const Tensor& given, int64_t width, int64_t max_tokens) {
  Tensor t = given.to_f32();
  if (t.ndim() == 3 && t.dim(0) == 1) t = t.reshape({t.dim(1), t.dim(2)});
  if (t.ndim() != 2 || t.dim(1) != width || t.dim(0) < 1 || t.dim(0) > max_tokens)
    fail("tensor '", name, "' has shape ", shape_str(given.shape()), "; expected [tokens, ", width,
         "] (or [1, tokens, ", width, "]) with 1 to ", max_tokens, " tokens");
  return t;
}

// The diffusers name of a Wan layer ("blocks.0.self_attn.q" -> "blocks.0.attn1.to_q"), or "".
std::string wan_diffusers_name(const std::string& stem) {
  static const std::pair<const char*, const char*> kBlock[] = {
      {"self_attn.q", "attn1.to_q"},        {"self_attn.k", "attn1.to_k"},
      {"self_attn.v", "attn1.to_v"},        {"self_attn.o", "attn1.to_out.0"},
      {"self_attn.norm_q", "attn1.norm_q"}, {"self_attn.norm_k", "attn1.norm_k"},
      {"cross_attn.q", "attn2.to_q"},       {"cross_attn.k", "attn2.to_k"},
      {"cross_attn.v", "attn2.to_v"},       {"cross_attn.o", "attn2.to_out.0"},
      {"cross_attn.k_img", "attn2.add_k_proj"}, {"cross_attn.v_img", "attn2.add_v_proj"},
      {"cross_attn.norm_q", "attn2.norm_q"}, {"cross_attn.norm_k", "attn2.norm_k"},
      {"cross_attn.norm_k_img", "attn2.norm_added_k"}, {"ffn.0", "ffn.net.0.proj"},
      {"ffn.2", "ffn.net.2"},               {"norm3", "norm2"},
      {"modulation", "scale_shift_table"}};
  static const std::pair<const char*, const char*> kTop[] = {
      {"patch_embedding", "patch_embedding"},
      {"text_embedding.0", "condition_embedder.text_embedder.linear_1"},
      {"text_embedding.2", "condition_embedder.text_embedder.linear_2"},
      {"time_embedding.0", "condition_embedder.time_embedder.linear_1"},
      {"time_embedding.2", "condition_embedder.time_embedder.linear_2"},
      {"time_projection.1", "condition_embedder.time_proj"},
      {"img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"},
      {"img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"},
      {"head.head", "proj_out"}};
  for (const auto& [ours, theirs] : kTop)
    if (stem == ours) return theirs;
  if (numbered_block(stem, "blocks.") < 0) return "";
  const size_t dot = stem.find('.', 7);
  const std::string head = stem.substr(0, dot + 1), rest = stem.substr(dot + 1);
  for (const auto& [ours, theirs] : kBlock)
    if (rest == ours) return head + theirs;
  return "";
}

class WanSpec final : public DenoiserSpec {
 public:
  WanSpec(WanConfig c, std::string embedded, std::string note, ModelCard card, std::string chosen = "",
          std::string chosen_description = "")
      : c_(std::move(c)), embedded_(std::move(embedded)), note_(std::move(note)), card_(std::move(card)),
        chosen_(std::move(chosen)), chosen_description_(std::move(chosen_description)) {}
  std::string variant_note() const override { return note_; }

  std::string family() const override { return wan22() || c_.ti2v() ? "Wan 2.2" : "Wan 2.1"; }
  std::string variant() const override { return wan22() ? chosen_description_ : c_.variant(); }

  // The Wan 2.2 T2V A14B experts (text2video.py and the t2v-A14B config): the high-noise
  // expert while t >= 875, guidance 4.0 then 3.0.
  std::optional<ExpertRole> expert() const override {
    if (card_.expert) return with_comfyui_names(*card_.expert);  // a test pair names itself
    if (!wan22() || c_.image_to_video()) return std::nullopt;
    ExpertRole r;
    r.high_noise = chosen_.find("-high") != std::string::npos;
    if (c_.takes_y()) {
      // The I2V A14B experts (image2video.py and the i2v-A14B config): t >= 900, 3.5 both.
      r.pair = "Wan 2.2 I2V A14B";
      r.boundary = 900.0;
      r.cfg_high = r.cfg_low = 3.5;
      return with_comfyui_names(r);
    }
    r.pair = "Wan 2.2 T2V A14B";
    r.boundary = 875.0;
    r.cfg_high = 4.0;
    r.cfg_low = 3.0;
    return with_comfyui_names(r);
  }
  // ComfyUI's pair differs only there: wan2.2_t2v_high_noise_14B_* / wan2.2_t2v_low_noise_14B_*.
  static ExpertRole with_comfyui_names(ExpertRole r) {
    r.high_name = "high_noise";
    r.low_name = "low_noise";
    return r;
  }
  std::string summary() const override {
    std::ostringstream os;
    os << "dim " << c_.dim << ", " << c_.num_heads << " heads x " << c_.head_dim() << ", ffn " << c_.ffn_dim
       << ", " << c_.num_layers << " blocks, in " << c_.in_dim << ", text " << c_.text_dim
       << (c_.image_to_video() ? ", image features" : "");
    return os.str();
  }
  int64_t attention_heads() const override { return c_.num_heads; }
  int64_t head_dim() const override { return c_.head_dim(); }
  int64_t sequence_tokens(const Shape& x) const override {
    return x.at(1) / c_.patch.t * (x.at(2) / c_.patch.h) * (x.at(3) / c_.patch.w);
  }
  int64_t context_tokens() const override { return c_.text_len; }

  SamplingDefaults defaults() const override {
    SamplingDefaults d;
    // The official T2V settings, with 30 steps; the embedded model samples in seconds.
    const bool tiny = !embedded_.empty();
    d.width = tiny ? 128 : 832;
    d.height = tiny ? 128 : 480;
    d.frames = tiny ? 9 : 81;
    d.steps = tiny ? 10 : 30;
    d.cfg = 5.0;
    d.shift = 5.0;
    d.sampler = SamplerKind::UniPC;
    d.fps = 16.0;
    // Image-to-video: the official image2video.py's 40 steps (shift 5, guidance 5).
    if (c_.takes_y() && !tiny) d.steps = 40;
    if (const auto role = expert()) {
      d.cfg = role->high_noise ? role->cfg_high : role->cfg_low;
      // The official A14B settings: T2V shift 12, I2V shift 5; 40 steps.
      if (wan22()) d.steps = 40, d.shift = c_.takes_y() ? 5.0 : 12.0;
    }
    if (c_.ti2v()) {  // wan/configs/wan_ti2v_5B.py: 1280x704, 121 frames at 24 fps, 50 steps
      d.width = tiny ? 64 : 1280;
      d.height = tiny ? 64 : 704;
      d.frames = tiny ? 9 : 121;
      d.steps = tiny ? 10 : 50;
      d.fps = 24.0;
    }
    return card_.apply(d);
  }

  std::string example_prompt() const override {
    return card_.vocabulary && !card_.vocabulary->example.empty() ? card_.vocabulary->example
                                                                   : DenoiserSpec::example_prompt();
  }
  std::string prompt_help() const override { return card_.vocabulary ? card_.vocabulary->describe() : ""; }
  std::string prompt_note(const std::string& prompt) const override {
    if (!card_.vocabulary) return "";
    const std::vector<std::string> unknown = card_.vocabulary->unknown_words(prompt);
    if (unknown.empty()) return "";
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 8; ++i) list += (i ? ", " : "") + ("'" + unknown[i] + "'");
    if (unknown.size() > 8) list += ", ...";
    const std::string model = embedded_.empty() ? "this model" : "the " + embedded_ + " model";
    return list + (unknown.size() == 1 ? " is" : " are") + " outside the vocabulary " + model +
           " was trained on (see `raylight generate --help`); it still runs, but cannot show " +
           (unknown.size() == 1 ? "it" : "them");
  }

  LatentFormat latent_format() const override {
    LatentFormat f;
    f.channels = c_.out_dim;
    f.item_rank = 4;
    f.comfyui_name = "Wan21";
    f.mean.assign(kWanVaeLatentMean, kWanVaeLatentMean + 16);
    f.std.assign(kWanVaeLatentStd, kWanVaeLatentStd + 16);
    if (c_.ti2v()) {
      f.comfyui_name = "Wan22";
      f.mean.assign(kWan22VaeLatentMean, kWan22VaeLatentMean + 48);
      f.std.assign(kWan22VaeLatentStd, kWan22VaeLatentStd + 48);
    } else if (c_.out_dim != 16) {
      f.mean.clear(), f.std.clear();  // custom widths: no statistics
    }
    return f;
  }

  Shape latent_shape(const OutputSize& o) const override {
    // TI2V's VAE compresses 16x16 (its DiT's 2x2 patches: pixels in multiples of 32).
    const int64_t vae = c_.ti2v() ? 16 : 8, multiple = 2 * vae;
    if (o.width <= 0 || o.height <= 0 || o.width % multiple || o.height % multiple)
      fail("width and height must be positive multiples of ", multiple, ", got ", o.width, "x", o.height);
    if (o.frames < 1 || (o.frames - 1) % 4 != 0)
      fail("frames must be 4k+1 (1, 5, 9, ..., 81), got ", o.frames);
    return {c_.out_dim, 1 + (o.frames - 1) / 4, o.height / vae, o.width / vae};
  }

  void check_latent(const Shape& x, const std::string& what) const override {
    const PatchSize& p = c_.patch;
    if (x.size() != 4 || x[0] != c_.out_dim || x[1] < 1 || x[2] < p.h || x[3] < p.w || x[1] % p.t ||
        x[2] % p.h || x[3] % p.w)
      fail(what, " has shape ", shape_str(x), "; expected [", c_.out_dim,
           ", frames, height, width] with height and width multiples of ", p.h);
  }

  std::vector<ConditioningInput> conditioning_inputs() const override {
    std::vector<ConditioningInput> in = {
        {"context", true, true, c_.text_dim, "[tokens <= " + std::to_string(c_.text_len) + ", " + std::to_string(c_.text_dim) + "]"}};
    if (c_.image_to_video())
      in.push_back({"clip_fea", false, true, c_.clip_dim,
                    "[" + (c_.first_last_frame ? std::to_string(c_.image_tokens) : std::string("257")) + ", " +
                        std::to_string(c_.clip_dim) + "]"});
    if (c_.takes_y())
      in.push_back({"y", false, true, 0, "[" + std::to_string(c_.in_dim - c_.out_dim) + ", F, H, W]"});
    // TI2V image-to-video: the image's latent as frame 0, its tokens at t = 0.
    if (c_.ti2v()) in.push_back({"first_frame", false, false, 0, "[48, 1, H, W]"});
    return in;
  }

  Conditioning check_conditioning(const Conditioning& given, const Shape& item) const override {
    Conditioning out;
    for (const auto& [name, t] : given) {
      const bool known = name == "context" || (c_.image_to_video() && name == "clip_fea") ||
                         (c_.takes_y() && name == "y") || (c_.ti2v() && name == "first_frame");
      if (!known)
        fail("tensor '", name, "' is not an input of ", variant(),
             c_.image_to_video() ? " (it takes context, clip_fea, y)"
             : c_.takes_y()      ? " (it takes context, y; it has no CLIP branch)"
                                 : " (it takes context; y and clip_fea are for image-to-video models)");
      if (!t.defined()) fail("tensor '", name, "' is empty");
      finite_f32(t, "tensor '" + name + "'");
    }
    auto it = given.find("context");
    if (it == given.end()) fail("tensor 'context' (the text embeddings) is required");
    out["context"] = tokens_tensor("context", it->second, c_.text_dim, c_.text_len);
    if (auto ff = given.find("first_frame"); ff != given.end()) {
      Tensor f = ff->second.to_f32();
      if (f.ndim() == 5 && f.dim(0) == 1) f = f.reshape({f.dim(1), f.dim(2), f.dim(3), f.dim(4)});
      const Shape want = {c_.in_dim, 1, item.at(2), item.at(3)};
      if (f.shape() != want)
        fail("tensor 'first_frame' has shape ", shape_str(ff->second.shape()), "; expected ", shape_str(want),
             " (the image's latent, one frame of the video latent's size)");
      out["first_frame"] = f;
    }
    if (!c_.takes_y()) return out;
    auto y = given.find("y");
    auto f = given.find("clip_fea");
    if (y == given.end() || (c_.image_to_video() && f == given.end()))
      fail("the model is image-to-video: ", c_.image_to_video() ? "tensors 'y' and 'clip_fea' are" : "tensor 'y' is",
           " required (the start frame: --image FILE)");
    Tensor yy = y->second.to_f32();
    if (yy.ndim() == 5 && yy.dim(0) == 1) yy = yy.reshape({yy.dim(1), yy.dim(2), yy.dim(3), yy.dim(4)});
    const Shape want = {c_.in_dim - c_.out_dim, item.at(1), item.at(2), item.at(3)};
    if (yy.shape() != want) fail("tensor 'y' has shape ", shape_str(y->second.shape()), "; expected ", shape_str(want));
    out["y"] = yy;
    if (!c_.image_to_video()) return out;
    // One image's tokens (257 for ViT-H/14; any count a CLIP makes), FLF2V exactly both frames'.
    out["clip_fea"] = tokens_tensor("clip_fea", f->second, c_.clip_dim, c_.first_last_frame ? c_.image_tokens : 4096);
    if (c_.first_last_frame && out["clip_fea"].dim(0) != c_.image_tokens)
      fail("tensor 'clip_fea' has shape ", shape_str(f->second.shape()), "; expected [", c_.image_tokens, ", ",
           c_.clip_dim, "] (the first and the last frame's CLIP tokens)");
    return out;
  }

  Conditioning example_conditioning(const Shape& item, uint64_t seed) const override {
    Conditioning c{{"context", gaussian_noise({c_.text_len, c_.text_dim}, seed)}};
    if (c_.image_to_video()) c["clip_fea"] = gaussian_noise({c_.image_tokens, c_.clip_dim}, seed + 1);
    if (c_.takes_y())
      c["y"] = gaussian_noise({c_.in_dim - c_.out_dim, item.at(1), item.at(2), item.at(3)}, seed + 2);
    return c;
  }

  int block_of(const std::string& weight) const override { return numbered_block(weight, "blocks."); }

  // ComfyUI's Wan forms ("transformer.<stem>", SimpleTuner's "lycoris_<stem with _>") and
  // the diffusers names of the same layers (PEFT LoRAs trained on diffusers' Wan).
  std::vector<std::string> lora_stems(const std::string& weight) const override {
    std::vector<std::string> out = DenoiserSpec::lora_stems(weight);
    const std::string stem = weight.size() > 7 && weight.compare(weight.size() - 7, 7, ".weight") == 0
                                 ? weight.substr(0, weight.size() - 7)
                                 : weight;
    std::string flat = stem;
    for (char& ch : flat)
      if (ch == '.') ch = '_';
    out.push_back("transformer." + stem);
    out.push_back("lycoris_" + flat);
    const std::string d = wan_diffusers_name(stem);
    if (!d.empty()) {
      out.push_back(d);
      out.push_back("transformer." + d);
      out.push_back("diffusion_model." + d);
    }
    return out;
  }

  Conditioning builtin_conditioning(int slot) const override {
    if (embedded_.empty()) return {};
    return {{"context", wan_tiny_context(slot)}};
  }
  std::string embedded_name() const override { return embedded_; }

  std::vector<PartSlot> parts() const override {
    if (c_.ti2v())
      return {{PartKind::TextEncoder, "umT5 text encoder", "text_encoders", {"umt5"}},
              {PartKind::LatentCodec, "Wan 2.2 VAE", "vae", {"wan2.2", "vae"}}};
    std::vector<PartSlot> p = {{PartKind::TextEncoder, "umT5 text encoder", "text_encoders", {"umt5"}},
                               {PartKind::LatentCodec, "Wan VAE", "vae", {"wan", "vae"}}};
    if (c_.image_to_video())  // ComfyUI's clip_vision_h.safetensors
      p.push_back({PartKind::ImageEncoder, "CLIP vision encoder (ViT-H/14)", "clip_vision", {"clip_vision"}});
    return p;
  }

  ImageInputs image_inputs() const override {
    if (c_.ti2v()) {  // text-to-video, or image-to-video from a start frame
      ImageInputs in;
      in.min_images = 0;
      in.max_images = 1;
      in.what = "at most one start frame";
      in.makes = {"first_frame"};
      return in;
    }
    if (!c_.takes_y()) return {};
    ImageInputs in;
    in.min_images = 1;
    in.max_images = c_.first_last_frame ? 2 : 1;
    in.what = c_.first_last_frame ? "a first frame and a last frame" : "a start frame";
    in.makes = {"y"};
    if (c_.image_to_video()) in.makes.push_back("clip_fea");
    return in;
  }

  Conditioning image_conditioning(const std::vector<Tensor>& images, const Shape& item, LatentCodec& codec,
                                  ImageEncoder* encoder) const override {
    if (c_.ti2v()) {
      Conditioning c;
      if (!images.empty()) c["first_frame"] = encode_first_frame(images.front(), item, codec);
      return c;
    }
    return wan_image_conditioning(c_, images, item, codec, encoder);
  }
  SampleFix latent_pin(const Conditioning& c) const override {
    const auto it = c.find("first_frame");
    if (!c_.ti2v() || it == c.end()) return {};
    return [image = it->second.to_f32()](Tensor& item) { write_first_frame(item, image); };
  }
  PartSlot denoiser_slot() const override {
    if (const auto role = expert()) {
      const char* task = c_.takes_y() ? "i2v" : "t2v";
      return {PartKind::Denoiser, role->pair + " " + (role->high_noise ? "high" : "low") + "-noise expert",
              "diffusion_models", {"wan2.2", task, role->high_noise ? "high" : "low"}};
    }
    if (c_.ti2v()) return {PartKind::Denoiser, "Wan 2.2 TI2V 5B model", "diffusion_models", {"wan2.2", "ti2v"}};
    const char* task = c_.first_last_frame ? "flf2v" : c_.image_to_video() ? "i2v" : "t2v";
    return {PartKind::Denoiser, std::string("Wan 2.1 ") + (c_.first_last_frame ? "FLF2V" : c_.image_to_video() ? "I2V" : "T2V") + " model",
            "diffusion_models", {"wan2.1", task}};
  }

  std::unique_ptr<Denoiser> make(WeightStore& weights, Backend& backend, SequenceAttention& attention) const override {
    return std::make_unique<WanModel>(c_, weights, backend, attention);
  }
  std::vector<DenoiserProduct> products(const Shape& item, const SegmentRows& rows) const override {
    return wan_products(c_, sequence_tokens(item), rows);
  }

 private:
  bool wan22() const { return chosen_.rfind("wan2.2", 0) == 0; }

  WanConfig c_;
  std::string embedded_;
  std::string note_;
  ModelCard card_;
  std::string chosen_, chosen_description_;  // the variant chosen among alike ones, if any
};

// Checkpoints whose tensors are alike (Wan 2.1 14B and the Wan 2.2 A14B experts), with the
// file-name pieces that tell them apart.
std::vector<VariantName> variant_names(const WanConfig& c) {
  if (c.in_dim > c.out_dim && !c.image_to_video())  // image channels but no CLIP branch
    return {{"wan2.2-i2v-a14b-high", "Wan 2.2 I2V A14B high-noise expert", {"wan2.2", "high"}, true},
            {"wan2.2-i2v-a14b-low", "Wan 2.2 I2V A14B low-noise expert", {"wan2.2", "low"}, true}};
  if (c.dim == 1536 && c.num_layers == 30 && !c.image_to_video())
    return {{"wan2.1-t2v-1.3b", "Wan 2.1 T2V 1.3B", {"wan2.1"}, true}};
  if (!(c.dim == 5120 && c.num_layers == 40 && c.ffn_dim == 13824)) return {};
  if (c.first_last_frame) return {{"wan2.1-flf2v-14b", "Wan 2.1 FLF2V 14B", {"wan2.1"}, true}};
  if (c.image_to_video()) return {{"wan2.1-i2v-14b", "Wan 2.1 I2V 14B", {"wan2.1"}, true}};
  return {{"wan2.1-t2v-14b", "Wan 2.1 T2V 14B", {"wan2.1"}, true},
          {"wan2.2-t2v-a14b-high", "Wan 2.2 T2V A14B high-noise expert", {"wan2.2", "high"}, true},
          {"wan2.2-t2v-a14b-low", "Wan 2.2 T2V A14B low-noise expert", {"wan2.2", "low"}, true}};
}

}  // namespace

bool wan_matches(const WeightStore& weights) { return looks_like_wan(weights); }

std::shared_ptr<const DenoiserSpec> wan_spec(const WanConfig& config, const std::string& embedded,
                                             const std::string& note, ModelCard card) {
  return std::make_shared<WanSpec>(config, embedded, note, std::move(card));
}

std::shared_ptr<const DenoiserSpec> wan_spec(const WeightStore& weights, const std::string& source,
                                             const std::string& variant) {
  const WanConfig config = detect_wan_config(weights);
  const auto meta = weights.metadata();
  auto it = meta.find("raylight.embedded");
  const std::string embedded = it == meta.end() ? "" : it->second;
  const std::vector<VariantName> names = variant_names(config);
  const VariantChoice choice = choose_variant(names, source, variant, config.variant());
  auto spec = std::make_shared<WanSpec>(config, embedded, choice.note, read_model_card(meta, source),
                                        choice.chosen ? choice.chosen->name : "",
                                        choice.chosen ? choice.chosen->description : "");
  return spec;
}

std::vector<std::pair<std::string, WanConfig>> wan_bench_presets() {
  WanConfig small, large;
  small.dim = 1536, small.num_heads = 12, small.ffn_dim = 8960, small.num_layers = 30;
  large.dim = 5120, large.num_heads = 40, large.ffn_dim = 13824, large.num_layers = 40;
  WanConfig ti2v;  // Wan 2.2 TI2V-5B (wan/configs/wan_ti2v_5B.py)
  ti2v.dim = 3072, ti2v.num_heads = 24, ti2v.ffn_dim = 14336, ti2v.num_layers = 30, ti2v.in_dim = ti2v.out_dim = 48;
  return {{"wan-1.3b", small}, {"wan-14b", large}, {"wan2.2-ti2v-5b", ti2v}};
}

}  // namespace raylight
