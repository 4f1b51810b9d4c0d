// The model-family seam. Everything above src/models (pipeline, server, CLI) speaks to a
// family through these interfaces and the registry (models/registry.h), never by name, so a
// new family is a folder under src/models plus one registry entry.
//
// A family has parts: a denoiser (the DiT), text encoders, a latent codec (the VAE) and,
// for image-conditioned variants, an image encoder. A checkpoint is recognised from its
// tensor names and shapes (models/registry.h); what can be known from the header alone - the
// variant, the sampling defaults, the latent shape and format, which conditioning tensors it
// takes - is a DenoiserSpec, so requests are checked before anything is loaded. The loaded
// network is a Denoiser.
//
// Conditioning travels as a small set of named tensors ("context" for text tokens,
// "pooled" for a pooled text vector, "clip_fea"/"y" for image-to-video, "reference.N" for
// reference-image latents, ...), so every family's inputs fit one type. Tensors at this
// seam are host fp32; latents are one item, channels first: [C, F, H, W] for video families,
// [C, H, W] for image families.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/linear_plans.h"
#include "core/tensor.h"
#include "parallel/lora/lora_plan.h"
#include "parallel/sequence_attention.h"
#include "parallel/weight_store.h"
#include "sampling/samplers.h"

namespace raylight {

enum class PartKind { Denoiser, TextEncoder, LatentCodec, ImageEncoder };
// "DiT", "text encoder", "VAE", "image encoder".
const char* part_kind_name(PartKind kind);

// Named conditioning tensors of one prompt (or shared by both prompts of a guided pass).
using Conditioning = std::map<std::string, Tensor>;

// One conditioning tensor a denoiser takes.
struct ConditioningInput {
  std::string name;        // "context", "pooled", "clip_fea", "y", ...
  bool per_prompt = true;  // differs between the positive and the negative prompt
  bool required = true;
  int64_t width = 0;       // last dimension where fixed (text features), else 0
  std::string shape;       // for messages and help: "[tokens <= 512, 4096]"
  // Text inputs read at a fixed length: the text encoder pads every prompt to this many
  // tokens with its pad token and keeps their outputs (Flux's T5: 512 dev, 256 schnell, as
  // the official code); 0: as many tokens as the prompt has.
  int64_t pad_tokens = 0;
};

// The name a negative prompt's tensor travels under in files and requests: "negative" for
// "context" (the long-standing name), "negative_<name>" for the others.
std::string negative_name(const std::string& input);

// What the pipeline and the ComfyUI nodes need to size and convert latents.
struct LatentFormat {
  int64_t channels = 0;
  int item_rank = 4;           // dimensions of one latent item: 4 video [C,F,H,W], 3 image [C,H,W]
  std::string comfyui_name;    // ComfyUI's comfy.latent_formats class ("Wan21", "Flux", ...)
  // ComfyUI's conversion into the model's space: (x - mean[c]) * scale_factor / std[c]
  // (per-channel mean/std), or (x - shift_factor) * scale_factor when mean/std are empty.
  double scale_factor = 1.0, shift_factor = 0.0;
  std::vector<float> mean, std;
};

// Sampling defaults of a family (or of one variant), written once, with the family.
struct SamplingDefaults {
  int64_t width = 0, height = 0, frames = 1;  // frames is 1 for image families
  int steps = 0;
  double cfg = 1.0;
  double shift = 1.0;     // the flow shift at the default size (DenoiserSpec::default_shift)
  double guidance = 0.0;  // distilled guidance (Flux dev's 3.5); 0 when the model takes none
  SamplerKind sampler = SamplerKind::Euler;
  double fps = 16.0;
};

// Models sampled as two experts split by noise level (Wan 2.2 A14B): the high-noise expert
// predicts while the timestep 1000 * sigma is at or above `boundary`, the low-noise one
// after. Both files of a pair carry the same role except `high_noise`; the pair's guidance
// defaults differ per expert, as the official configs.
struct ExpertRole {
  bool high_noise = false;
  std::string pair;   // names the pair ("Wan 2.2 T2V A14B"): the two files must agree
  double boundary = 0;
  double cfg_high = 1.0, cfg_low = 1.0;
  // How the two files' names differ where people keep them ("high_noise" / "low_noise" in
  // ComfyUI's), so the partner can be found beside a file; empty when they do not.
  std::string high_name, low_name;
};

// The size of an output in pixels (frames 1 for images).
struct OutputSize {
  int64_t width = 0, height = 0, frames = 1;
};

// A denoiser's embedding of one prompt's conditioning, made once per prompt.
class PreparedConditioning {
 public:
  virtual ~PreparedConditioning() = default;
};

// The loaded network: latent + conditioning + timestep -> prediction (flow velocity).
class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // Embeds checked conditioning (DenoiserSpec::check_conditioning) once per prompt.
  virtual std::unique_ptr<PreparedConditioning> prepare(const Conditioning& conditioning) = 0;
  // The prediction for one latent item (host fp32) at timestep t = 1000 * sigma.
  virtual Tensor predict(const Tensor& latent, double timestep, const PreparedConditioning& c) = 0;
  // Called between transformer blocks with the index of the block just done: where a job
  // can stop mid-forward (the hook may throw). Families call between_blocks() in their loop.
  void set_block_hook(std::function<void(int block)> hook) { block_hook_ = std::move(hook); }
  // Named intermediates, as llama.cpp's cb(cur, name, layer): when set, the family hands
  // chosen intermediates (this rank's rows, on the backend's device) to the trace, e.g.
  // `raylight forward --dump DIR`, to compare a GPU forward with the CPU or PyTorch block
  // by block. layer -1: outside the blocks.
  using Trace = std::function<void(const std::string& name, int layer, const Tensor& t)>;
  void set_trace(Trace trace) { trace_ = std::move(trace); }

 protected:
  void between_blocks(int block) {
    if (block_hook_) block_hook_(block);
  }
  void trace(const char* name, int layer, const Tensor& t) const {
    if (trace_) trace_(name, layer, t);
  }
  bool tracing() const { return static_cast<bool>(trace_); }

 private:
  std::function<void(int)> block_hook_;
  Trace trace_;
};

// Prompt -> named conditioning tensors.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual std::string variant() const = 0;
  // The tensors encode() makes and their widths, e.g. {"context", 4096}: checked against
  // the denoiser's inputs before any work starts.
  virtual std::vector<std::pair<std::string, int64_t>> outputs() const = 0;
  virtual Conditioning encode(const std::string& prompt) = 0;
  // Pad prompts to `tokens` tokens (ConditioningInput::pad_tokens); 0: unpadded. Encoders
  // that cannot pad refuse any other value.
  virtual void set_padding(int64_t tokens);
};

// Decoding by spatial tiles (models/common/latent_tiles.h splits, blends and bounds it; the
// pipeline spreads the tiles over ranks). A codec that can decode a region of a latent
// says how here; every codec decodes whole latents.
struct LatentTiling {
  int64_t scale = 0;          // pixels per latent pixel along each spatial axis; 0: not tileable
  // Latent pixels of context around a region that make its decode exact (everything that
  // reaches further has been computed over the whole latent first); 0 when no context does
  // (attention over the whole image inside): tiles then overlap and blend.
  int64_t exact_context = 0;
};

// A latent rectangle in latent pixels: rows [y0, y1), columns [x0, x1).
struct LatentRegion {
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
  int64_t height() const { return y1 - y0; }
  int64_t width() const { return x1 - x0; }
};

// Decodes regions of one latent (made once per latent, on each rank that decodes tiles).
class RegionDecoder {
 public:
  virtual ~RegionDecoder() = default;
  // Pixels of region r: [3, F, h * scale, w * scale] (video) or [3, h * scale, w * scale],
  // clamped to [-1, 1] as decode() is. Pixels near an edge of r that is not the latent's
  // edge lack context; the tiler asks for regions with their context and keeps the middle.
  virtual Tensor decode(const LatentRegion& r) = 0;
};

// Latents <-> pixels. Pixels are host fp32 in [-1, 1]: [3, F, H, W] (video) or [3, H, W].
class LatentCodec {
 public:
  using Progress = std::function<void(int64_t done, int64_t total)>;
  virtual ~LatentCodec() = default;
  virtual std::string variant() const = 0;
  virtual int64_t latent_channels() const = 0;
  // Dimensions of one latent item it decodes: 4 video [C, F, H, W], 3 picture [C, H, W]
  // (LatentFormat::item_rank of the denoisers it fits).
  virtual int item_rank() const { return 4; }
  virtual Tensor decode(const Tensor& latent, const Progress& progress = {}) = 0;
  virtual Tensor encode(const Tensor& pixels, const Progress& progress = {}) = 0;
  // Tiling (above). A codec is tileable when tiling().scale > 0; the default region decoder
  // then crops the latent and decodes the crop (right for codecs without global layers).
  virtual LatentTiling tiling() const { return {}; }
  virtual std::unique_ptr<RegionDecoder> region_decoder(const Tensor& latent);
  // The codec's memory model: device bytes to decode a region of h x w latent pixels
  // (context included, `frames` latent frames; 1 for images) in bf16 activations, weights
  // not counted; 0 when unknown. The tile size under --gpu-memory-limit comes from it.
  virtual double region_decode_bytes(int64_t /*h*/, int64_t /*w*/, int64_t /*frames*/) const { return 0; }
  // Device bytes of the work a tiled decode does over the whole latent before its tiles
  // (Wan: the decoder up to its middle attention); 0 when none or unknown.
  virtual double shared_decode_bytes(int64_t /*h*/, int64_t /*w*/, int64_t /*frames*/) const { return 0; }
  // Device bytes of the weights in bf16 (0 when unknown).
  virtual double weight_bytes() const { return 0; }
};

// Image -> named conditioning tensors (CLIP vision for image-to-video, ...).
class ImageEncoder {
 public:
  virtual ~ImageEncoder() = default;
  virtual std::string variant() const = 0;
  virtual Conditioning encode(const Tensor& image) = 0;
};

// The pictures a denoiser is conditioned on (image-to-video: a start frame, and a last
// frame for first-last-frame models); none for text-to-video.
struct ImageInputs {
  int min_images = 0, max_images = 0;
  std::string what;                // "a start frame", for messages
  std::vector<std::string> makes;  // the shared conditioning made from them ("y", "clip_fea")
};

// What a pipeline needs besides the denoiser, and where ComfyUI keeps it.
struct PartSlot {
  PartKind kind;
  std::string what;                     // "umT5 text encoder", used in messages
  std::string comfyui_folder;           // under ComfyUI's models/: "text_encoders", "vae", ...
  std::vector<std::string> name_parts;  // lower-case pieces every matching file name holds
  // Where an all-in-one checkpoint (ComfyUI models/checkpoints) holds this part, beside the
  // DiT under "model.diffusion_model." (Flux's T5: "text_encoders.t5xxl.transformer.");
  // several are alternatives, of which a file may use one.
  std::vector<std::string> checkpoint_prefixes = {};
};

// Rows this process holds of a sequence segment of `tokens` tokens: the attention seam's
// split (SequenceAttention::segment_rows), so a family lists its products without ranks.
using SegmentRows = std::function<int64_t(int64_t tokens)>;

// One matrix product a denoiser runs through the backend's linear ops (bf16 or fp8 weights).
struct DenoiserProduct {
  std::string weight;  // the weight's name in the store, which knows its stored dtype
  LinearShape shape;   // weight_dtype is left for the caller to read from the store
  // `module`.weight over m rows, [n, k], with its bias (and GELU in the epilogue).
  static DenoiserProduct biased(const std::string& module, int64_t m, int64_t n, int64_t k, bool gelu = false) {
    LinearShape s;
    s.rows = m;
    s.out = n;
    s.width = k;
    s.bias = true;
    s.gelu = gelu;
    return {module + ".weight", s};
  }
};

// What a denoiser checkpoint is, known from its header alone.
class DenoiserSpec {
 public:
  virtual ~DenoiserSpec() = default;
  virtual std::string family() const = 0;   // "Wan 2.1"
  virtual std::string variant() const = 0;  // "Wan2.1 T2V 1.3B"
  // One line of shape facts for `inspect` (dims, heads, blocks, ...).
  virtual std::string summary() const = 0;
  // Where tensors cannot tell this variant from others: which were alike and what decided
  // (the file name, --variant); "" otherwise.
  virtual std::string variant_note() const { return ""; }
  virtual int64_t attention_heads() const = 0;
  virtual int64_t head_dim() const = 0;
  // Tokens of the joint sequence for a latent item (what self-attention runs over).
  virtual int64_t sequence_tokens(const Shape& item) const = 0;
  // The longest context cross-attention reads (text tokens), 0 without cross-attention.
  virtual int64_t context_tokens() const = 0;
  virtual SamplingDefaults defaults() const = 0;
  virtual LatentFormat latent_format() const = 0;
  // The latent item shape for an output size; errors say which sizes fit.
  virtual Shape latent_shape(const OutputSize& size) const = 0;
  // Checks a latent item shape a caller gives (`what` names it in errors).
  virtual void check_latent(const Shape& item, const std::string& what) const = 0;
  // The conditioning tensors it takes, per prompt and shared.
  virtual std::vector<ConditioningInput> conditioning_inputs() const = 0;
  // Checks one prompt's conditioning (per-prompt tensors plus the shared ones) for a latent
  // item shape and returns it normalised (fp32, leading batch of one dropped); errors name
  // the tensor.
  virtual Conditioning check_conditioning(const Conditioning& c, const Shape& item) const = 0;
  // Random conditioning of full size for a latent item (benchmarks, plan warm-up).
  virtual Conditioning example_conditioning(const Shape& item, uint64_t seed) const = 0;
  // The flow shift for a latent of `item`'s shape when the user gives none: the family's
  // shift rule (a constant for Wan; Flux's grows with the image's token count). Schedules
  // are flow_sigmas(steps, shift).
  virtual double default_shift(const Shape& /*item*/) const { return defaults().shift; }
  // The distilled guidance when the user gives none, for a prompt's conditioning: the
  // family's default, or one that depends on the inputs (Flux Kontext: 2.5 with references).
  virtual double default_guidance(const Conditioning& /*c*/) const { return defaults().guidance; }
  // Families that take reference pictures ("reference.N" inputs: Flux Kontext) fit each
  // picture of `picture` pixels to this size before encoding it: with `resize`, a size the
  // picture is centre-cropped to the aspect ratio of and resized to (Kontext's preferred
  // resolutions); without, a size it is only centre-cropped to (one the latent shape allows).
  virtual OutputSize reference_size(const OutputSize& picture, bool /*resize*/) const { return picture; }
  // Which transformer block a weight belongs to (-1: outside the blocks): where FSDP
  // gathers and offload streams, one block at a time.
  virtual int block_of(const std::string& weight) const = 0;
  // The key stems a LoRA file may name `weight` by (parallel/lora/): ComfyUI's generic
  // forms ("<stem>", "diffusion_model.<stem>", "lora_unet_<stem with _>"; the whole name for
  // tensors not ending in ".weight"); families add their trainers' names (diffusers, ...).
  virtual std::vector<std::string> lora_stems(const std::string& weight) const;
  // The pictures it is conditioned on (none by default) and the shared conditioning made
  // from them: `images` host fp32 [3, H, W] in [-1, 1] (first frame first) for a latent item
  // of shape `item`, encoded with the family's codec and, where parts() has an image
  // encoder slot, that encoder (else null). Done once per job, on one rank.
  virtual ImageInputs image_inputs() const { return {}; }
  virtual Conditioning image_conditioning(const std::vector<Tensor>& images, const Shape& item,
                                          LatentCodec& codec, ImageEncoder* encoder) const;
  // What checked conditioning fixes in a latent item (host fp32, item shape), as a function
  // the sampling loop applies to its start and after every step: Wan 2.2 TI2V writes the
  // image's latent back into frame 0, as textimage2video.py's mask blend does. Empty when the
  // conditioning fixes nothing (the default), so the loop does no extra work.
  virtual SampleFix latent_pin(const Conditioning& /*conditioning*/) const { return {}; }
  // LoRA key stems that land on a run of rows of a fused weight (separate q/k/v LoRAs on
  // Flux's fused qkv and linear1, as ComfyUI maps diffusers names), beside lora_stems.
  virtual std::vector<std::pair<std::string, LoraTarget>> lora_slices() const { return {}; }
  // The embedded model's stand-in conditioning for prompt slot 0 (positive) or 1
  // (negative); empty for checkpoints, which need real embeddings.
  virtual Conditioning builtin_conditioning(int /*slot*/) const { return {}; }
  // Set for one expert of a two-expert model (the loader then wants its partner).
  virtual std::optional<ExpertRole> expert() const { return std::nullopt; }
  // A prompt that shows what the model makes (`generate`'s default prompt).
  virtual std::string example_prompt() const { return "a red fox running through fresh snow, morning light"; }
  // For a model trained on a closed set of prompts (the demo model): that vocabulary as a
  // few lines of help text, and a note naming the words of `prompt` outside it. Both are ""
  // for models that take any prompt.
  virtual std::string prompt_help() const { return ""; }
  virtual std::string prompt_note(const std::string& /*prompt*/) const { return ""; }
  // The name of the embedded model this is ("tiny"), or "" for a checkpoint: the other
  // parts default to the embedded ones of the same name.
  virtual std::string embedded_name() const { return ""; }
  // The other parts a prompt-to-output pipeline needs.
  virtual std::vector<PartSlot> parts() const = 0;
  // How ComfyUI users' files of this family are named (models/diffusion_models).
  virtual PartSlot denoiser_slot() const = 0;
  virtual std::unique_ptr<Denoiser> make(WeightStore& weights, Backend& backend,
                                         SequenceAttention& attention) const = 0;
  // The products a latent item of shape `item` runs through the backend's linear ops: one
  // forward's (every block's) and its conditioning embedding's, `rows` giving this process's
  // share of each sequence segment. What a backend makes plans for before the first step
  // (backend/linear_plans.h); fp32 products (time embedding, Wan's head) are not among them.
  // Empty (the default): the products make their plans at first use.
  virtual std::vector<DenoiserProduct> products(const Shape& /*item*/, const SegmentRows& /*rows*/) const {
    return {};
  }
};

}  // namespace raylight
