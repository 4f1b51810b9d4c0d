// raylight generate: a prompt in, a video (or picture) out. With no model flags everything
// is the embedded demo model (text encoder, DiT, VAE: small trained weights), so it runs in
// seconds on a CPU and shows what the prompt says, within the demo's vocabulary.
#include <chrono>
#include <cstdio>
#include <unistd.h>

#include "commands.h"
#include "core/error.h"
#include "dist/runtime.h"
#include "models/registry.h"
#include "options.h"
#include "parallel_options.h"
#include "expert_options.h"
#include "sample_options.h"
#include "pipeline/comfyui_files.h"
#include "io/image/image_reader.h"
#include "pipeline/generate.h"
#include "io/image/image_reader.h"
#include "pipeline/reference_images.h"

namespace raylight::cli {

// The model `generate` uses without --model or --comfyui-dir.
static constexpr const char* kDefaultModel = "demo";

static constexpr const char* kHelp =
    "usage: raylight generate [options]\n"
    "  --prompt TEXT            what to make (default: an example prompt of the model)\n"
    "  --negative-prompt TEXT   what to steer away from (empty)\n"
    "  --model FILE|demo|tiny|tiny-flux   DiT safetensors, or an embedded model (demo: small trained\n"
    "                           weights; tiny, tiny-flux: random Wan / Flux weights, for tests) (demo);\n"
    "                           families: `raylight --help`\n"
    "  --variant NAME           which variant a checkpoint is, where its tensors cannot tell\n"
    "  --text-encoder FILE|NAME the model's text encoder (ComfyUI's models/text_encoders)\n"
    "                           (an embedded model's own; else tiny)\n"
    "  --text-encoder-2 FILE|NAME  the second text encoder of models with two (Flux: CLIP-L)\n"
    "  --tokenizer PATH         a tokenizer the encoder file lacks: SentencePiece .model, T5 tokenizer.json,\n"
    "                           CLIP vocab.json + merges.txt folder, or a ComfyUI folder (holds both)\n"
    "  --vae FILE|NAME          the model's VAE (ComfyUI's models/vae) (as --text-encoder)\n"
    "  --image FILE             image-to-video: the start frame (PNG, WebP, JPEG where built), fitted to\n"
    "                           the video size (centred crop to its aspect, bicubic); for models that\n"
    "                           edit pictures (any Flux dev-family model: Flux.1 Kontext dev) a reference\n"
    "                           picture (repeat for several, at most 8), each resized to Kontext's nearest\n"
    "                           preferred resolution (centre crop, Lanczos, as ComfyUI's\n"
    "                           FluxKontextImageScale); the output size defaults to the first's\n"
    "  --no-resize              keep reference pictures' sizes (centre-cut to multiples of 16)\n"
    "  --last-image FILE        first-last-frame models (Wan 2.1 FLF2V): the last frame\n"
    "  --clip-vision FILE       the CLIP vision encoder of Wan 2.1 I2V/FLF2V (ComfyUI's models/clip_vision:\n"
    "                           clip_vision_h.safetensors)\n"
    "  --comfyui-dir DIR        find the files under DIR/models/... (flags above win)\n"
    "  --image FILE             image-to-video from a start frame (PNG; Wan 2.2 TI2V-5B): scaled to\n"
    "                           cover the size, centre-cropped, encoded as the first latent frame\n"
    "  --width W --height H --frames F   (the model's default: 832x480x81; demo, tiny: 128x128x9)\n"
    "  --steps N --cfg G --shift S --seed K --sampler euler|unipc|dpmpp2m\n"
    "                           (the model's defaults: 30, 5, 5, 0, unipc; demo: 10, 4, 3, 0, unipc)\n"
    "  --guidance G             distilled guidance of models that take it (Flux dev: 3.5; 2.5 with --image)\n"

    "  --out FILE               videos: .mp4 (H.264), .webp (animated), .png or dir/ (frames) (video.mp4);\n"
    "                           pictures: .png, .webp, .jpg where built with JPEG (picture.png)\n"
    "  --fps N                  frames per second of the file (the model's default: 16; demo: 8)\n"
    "  --vae-tile HxW           decode by tiles of HxW pixels (multiples of the VAE's 8); without it\n"
    "                           tiles come from --gpu-memory-limit, and with several ranks the tiles\n"
    "                           are spread over them (exact: the same pixels as one decode)\n";

namespace {

// A bar on a terminal, plain lines otherwise (logs, CI).
void show_progress(int step, int total) {
  if (!isatty(fileno(stderr))) {
    std::fprintf(stderr, "step %d/%d\n", step, total);
    return;
  }
  const int width = 30, filled = total ? step * width / total : width;
  std::fprintf(stderr, "\r[%.*s%*s] step %d/%d", filled, "##############################",
               width - filled, "", step, total);
  if (step == total) std::fputc('\n', stderr);
}

}  // namespace

int run_generate(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kExpertHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      // A model trained on a closed set of prompts lists them (read from its model card).
      const std::string vocabulary =
          denoiser_spec(*open_store(kDefaultModel, PartKind::Denoiser), kDefaultModel)->prompt_help();
      if (!vocabulary.empty())
        std::printf("\nThe %s model knows these words (other prompts run, but it cannot show them):\n%s",
                    kDefaultModel, vocabulary.c_str());
      return 0;
    }
  std::set<std::string> valued = {"prompt", "negative-prompt", "model", "variant", "text-encoder", "tokenizer",
                                  "vae", "comfyui-dir", "out", "fps", "text-encoder-2", "vae-tile",
                                  "image", "last-image", "clip-vision"};
  valued.insert(kSampleValued.begin(), kSampleValued.end());
  valued.insert(kExpertValued.begin(), kExpertValued.end());
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  valued.insert("image");
  std::set<std::string> flags = kParallelFlags;
  flags.insert("no-resize");
  Options opt(args, valued, flags);
  const ParallelLayout layout = parse_parallel(opt);
  const bool lead = Runtime::world_rank() == 0;
  const auto t0 = std::chrono::steady_clock::now();

  const std::string variant = opt.str("variant", "");
  ModelFiles files;
  if (opt.has("comfyui-dir")) {
    files.model = opt.str("model", "");
    if (opt.has("text-encoder")) files.parts.text_encoders = {opt.str("text-encoder", "")};
    if (opt.has("text-encoder-2")) {
      files.parts.text_encoders.resize(2);
      files.parts.text_encoders[1] = opt.str("text-encoder-2", "");
    }
    files.parts.codec = opt.str("vae", "");
    files.parts.image_encoder = opt.str("clip-vision", "");
    files = find_comfyui_files(opt.str("comfyui-dir", ""), files, variant);
  } else {
    files.model = opt.str("model", kDefaultModel);
  }
  files.parts.tokenizer = opt.str("tokenizer", "");
  GenerateRequest request;
  request.negative_prompt = opt.str("negative-prompt", "");

  // The DiT's header says what it is (its weights load later); an embedded model's other
  // parts default to the embedded ones of the same name.
  std::unique_ptr<WeightStore> weights = open_store(files.model, PartKind::Denoiser);
  const auto spec = denoiser_spec(*weights, files.model, variant);
  // Pictures or videos as the family makes them; an unsupported extension, a folder, device or
  // socket as --out fail before any work.
  request.out = opt.str("out", spec->latent_format().item_rank == 3 ? "picture.png" : "video.mp4");
  check_output_path(request.out, *spec);
  if (lead) check_output_target(request.out, *spec);
  if (!opt.has("comfyui-dir") && spec->embedded_name().empty() && holds_parts(files.model, *spec)) {
    // An all-in-one checkpoint: the parts it holds come from it, flags override.
    if (opt.has("text-encoder")) files.parts.text_encoders = {opt.str("text-encoder", "")};
    if (opt.has("text-encoder-2")) {
      files.parts.text_encoders.resize(2);
      files.parts.text_encoders[1] = opt.str("text-encoder-2", "");
    }
    files.parts.codec = opt.str("vae", "");
    files = checkpoint_parts(files, *spec);
  } else if (!opt.has("comfyui-dir")) {
    const std::string same = spec->embedded_name().empty() ? "tiny" : spec->embedded_name();
    // An embedded model's own text encoders, one per slot of its family; flags override.
    std::vector<std::string> own = embedded_parts(same, PartKind::TextEncoder);
    if (own.empty()) own = {same};
    files.parts.text_encoders = own;
    if (opt.has("text-encoder")) files.parts.text_encoders[0] = opt.str("text-encoder", "");
    if (opt.has("text-encoder-2")) {
      files.parts.text_encoders.resize(2);
      files.parts.text_encoders[1] = opt.str("text-encoder-2", "");
    }
    files.parts.codec = opt.str("vae", same);
    files.parts.image_encoder = opt.str("clip-vision", "");
  }
  // --image: reference pictures for models that edit pictures (Flux Kontext: read below),
  // else the frames an image-to-video model is conditioned on: --image (repeatable), then
  // --last-image; counted against the model and read (every rank, so a bad file stops them
  // all) before it loads.
  const bool takes_references = reference_slots(*spec) > 0;
  if (!takes_references) {
    std::vector<std::string> frames = opt.all("image");
    if (opt.has("last-image")) frames.push_back(opt.str("last-image", ""));
    check_image_count(*spec, files.model, frames.size());
    for (const auto& image : frames) request.images.push_back(read_image(image));
  } else if (opt.has("last-image")) {
    fail(files.model, " (", spec->variant(), ") edits pictures; --last-image is for first-last-frame video models");
  }
  request.prompt = opt.str("prompt", spec->example_prompt());
  const std::string note = spec->prompt_note(request.prompt);
  if (lead && !note.empty()) std::fprintf(stderr, "note: %s\n", note.c_str());
  // Every file must open before the DiT loads (a missing VAE should not cost a 14B load), and
  // a part an all-in-one checkpoint lacks is named now.
  check_parts_given(*spec, files.model, files.parts);
  if (!files.parts.image_encoder.empty()) open_store(files.parts.image_encoder, PartKind::ImageEncoder);
  size_t encoder = 0;
  for (const PartSlot& slot : spec->parts()) {
    if (slot.kind == PartKind::TextEncoder) open_part(files.parts.text_encoders[encoder++], slot);
    if (slot.kind == PartKind::LatentCodec) open_part(files.parts.codec, slot);
  }
  for (; encoder < files.parts.text_encoders.size(); ++encoder)
    open_store(files.parts.text_encoders[encoder], PartKind::TextEncoder);
  const LowExpertFile low_expert = check_low_expert(opt, *spec, files.model);
  request.options = parse_sample_options(opt, *spec);
  // Reference pictures (Kontext): every rank reads them for the size; rank 0 encodes them.
  const std::vector<std::string> images = takes_references ? opt.all("image") : std::vector<std::string>{};
  request.resize_references = !opt.flag("no-resize");
  if (!images.empty()) {
    check_reference_count(*spec, images.size());
    request.reference_images = images;
    if (!opt.has("width") && !opt.has("height")) {
      const OutputSize first = reference_picture_size(*spec, images[0], request.resize_references);
      request.options.size.width = first.width;
      request.options.size.height = first.height;
    }
  } else if (opt.flag("no-resize")) {
    fail("--no-resize is for reference pictures (--image)");
  }
  request.fps = opt.number("fps", spec->defaults().fps);
  if (!(request.fps > 0)) fail("--fps must be positive, got ", request.fps);
  if (layout.cfg == 2 && request.options.cfg == 1.0) fail("--cfg-parallel needs guidance (--cfg other than 1)");
  spec->latent_shape(request.options.size);
  check_run_estimate(opt, *spec, *weights, request.options, layout);
  if (opt.has("vae-tile")) request.vae_tiles = parse_vae_tile(opt.str("vae-tile", ""));

  LoadedModel model = load_model(std::move(weights), make_backend(parse_device(opt), Runtime::world_rank(), parse_attention(opt)), layout,
                                 parse_placement(opt), files.model, variant);
  load_low_expert(model, low_expert);
  model.weights->set_verbose(opt.flag("verbose"));
  request.vae_tiles.gpu_memory_limit = static_cast<double>(parse_placement(opt).gpu_memory_limit);
  request.vae_tiles.held_bytes = static_cast<double>(model.weights->held_bytes());
  request.vae_tiles.ranks = Runtime::world_size();
  std::unique_ptr<Generator> parts;
  if (lead) parts = std::make_unique<Generator>(*spec, files.model, *model.backend, files.parts);
  else if (decode_on_every_rank(request))
    parts = std::make_unique<Generator>(Generator::DecodeOnly{}, *spec, files.model, *model.backend, files.parts);
  // A tile size the VAE cannot take fails now, not after sampling.
  if (parts) vae_tile_plan(parts->codec(), spec->latent_shape(request.options.size), request.vae_tiles);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const SampleOptions& so = request.options;
  if (lead)
    std::fprintf(stderr, "model: %s on %s, %d steps, %lldx%lldx%lld, %d rank(s): %s\n", spec->variant().c_str(),
                 model.backend->name().c_str(), so.steps, (long long)so.size.width, (long long)so.size.height,
                 (long long)so.size.frames, Runtime::world_size(), model.groups.layout.describe().c_str());
  auto step_start = std::chrono::steady_clock::now();
  GenerateTimings t = generate(model, parts.get(), request, [&](int step, int total) {
    if (step == 1)
      report_first_step(std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count(), total);
    if (lead) show_progress(step, total);
  });
  report_peak_memory(model);
  if (!lead) return 0;
  std::fprintf(stderr, "wrote %s\ntiming: load %.2f s, encode %.2f s, sample %.2f s, decode %.2f s, write %.2f s\n",
               request.out.c_str(), load_s, t.encode_s, t.sample_s, t.decode_s, t.write_s);
  return 0;
}

}  // namespace raylight::cli
