#include "pipeline/generate.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "dist/runtime.h"
#include "io/image/image_writer.h"
#include "io/video/video_format.h"
#include "io/video/video_writer.h"
#include "models/common/first_frame.h"
#include "models/registry.h"
#include "pipeline/reference_images.h"

namespace raylight {
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The input of `spec` that a part's output `name` feeds, or null.
const ConditioningInput* input_named(const std::vector<ConditioningInput>& inputs, const std::string& name) {
  for (const auto& in : inputs)
    if (in.name == name) return &in;
  return nullptr;
}

// For a part missing from a model file: where an all-in-one checkpoint would hold it.
std::string not_inside(const std::string& model, const PartSlot& slot) {
  std::error_code ec;
  if (slot.checkpoint_prefixes.empty() || !fs::is_regular_file(model, ec)) return "";
  return "; an all-in-one checkpoint holds it under " + slot.checkpoint_prefixes.front() + ", where " + model +
         " has no tensors";
}

}  // namespace

void check_parts_given(const DenoiserSpec& spec, const std::string& model, const PartFiles& files) {
  size_t encoder = 0;
  bool takes_image_encoder = false;
  for (const PartSlot& slot : spec.parts()) {
    if (slot.kind == PartKind::TextEncoder) {
      if (encoder >= files.text_encoders.size() || files.text_encoders[encoder].empty())
        fail(model, " needs a ", slot.what, encoder == 0 ? " (--text-encoder FILE)" : " (--text-encoder-2 FILE)",
             not_inside(model, slot));
      ++encoder;
    } else if (slot.kind == PartKind::LatentCodec && files.codec.empty()) {
      fail(model, " needs a ", slot.what, " (--vae FILE)", not_inside(model, slot));
    } else if (slot.kind == PartKind::ImageEncoder) {
      takes_image_encoder = true;
      if (files.image_encoder.empty()) fail(model, " needs a ", slot.what, " (--clip-vision FILE)");
    }
  }
  if (!takes_image_encoder && !files.image_encoder.empty())
    fail(model, " (", spec.variant(), ") has no CLIP branch; --clip-vision is for models with an image encoder");
}

Generator::Generator(const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files)
    : spec_(&spec) {
  const std::vector<ConditioningInput> inputs = spec.conditioning_inputs();
  const std::vector<std::string> made = open_encoders(spec, model, backend, files);
  for (const PartSlot& slot : spec.parts())
    if (slot.kind == PartKind::LatentCodec) open_codec(slot, spec, model, backend, files);
  if (!codec_) fail(model, " has no VAE to decode its latents with");
  open_image_encoder(spec, model, backend, files);
  std::string missing;
  for (const auto& in : inputs)
    // "guidance" comes from the sampling options (with_guidance), not from a part.
    if (in.required && in.name != "guidance" && std::find(made.begin(), made.end(), in.name) == made.end())
      missing += (missing.empty() ? "" : ", ") + in.name;
  if (!missing.empty())
    fail("generate makes its inputs from a prompt; ", model, " (", spec.variant(), ") also needs ", missing,
         " (an image-to-video model?)");
  warm_encoders(backend);
}

Generator::Generator(EncodeOnly, const DenoiserSpec& spec, const std::string& model, Backend& backend,
                     const PartFiles& files) {
  open_encoders(spec, model, backend, files);
  if (encoders_.empty()) fail(model, " (", spec.variant(), ") has no text encoder");
  warm_encoders(backend);
}

std::vector<std::string> Generator::open_encoders(const DenoiserSpec& spec, const std::string& model,
                                                  Backend& backend, const PartFiles& files) {
  const std::vector<ConditioningInput> inputs = spec.conditioning_inputs();
  size_t next_encoder = 0;
  std::vector<std::string> made = spec.image_inputs().makes;  // conditioning names the parts make
  for (const PartSlot& slot : spec.parts()) {
    if (slot.kind == PartKind::TextEncoder) {
      if (next_encoder >= files.text_encoders.size() || files.text_encoders[next_encoder].empty())
        fail(model, " needs a ", slot.what, next_encoder == 0 ? " (--text-encoder FILE)" : " (--text-encoder-2 FILE)",
             not_inside(model, slot));
      const std::string& file = files.text_encoders[next_encoder++];
      encoders_.push_back(make_text_encoder(open_part(file, slot), backend, file, files.tokenizer));
      for (const auto& [name, width] : encoders_.back()->outputs()) {
        const ConditioningInput* in = input_named(inputs, name);
        if (!in) fail("text encoder ", file, " makes '", name, "', which the DiT ", model, " does not read");
        if (in->width && in->width != width)
          fail("text encoder ", file, " outputs ", width, " features but the DiT ", model, " reads ", in->width,
               " ('", name, "')");
        if (in->pad_tokens) encoders_.back()->set_padding(in->pad_tokens);
        // Two encoders making the same input: one of them is in the wrong slot.
        if (std::find(made.begin(), made.end(), name) != made.end())
          fail("text encoder ", file, " (", encoders_.back()->variant(), ") makes '", name, "' again; ", model,
               " needs a ", slot.what, " in this place");
        made.push_back(name);
      }
    }
  }
  if (next_encoder < files.text_encoders.size())
    fail(model, " takes ", next_encoder, " text encoder(s); ", files.text_encoders.size(), " were given");
  return made;
}

void Generator::warm_encoders(Backend& backend) {
  // On a device that keeps weights, the encoders' weights go there now (they are placed on
  // first use): one empty prompt, so loading pays the upload (T5-XXL: 9.5 GB at fp16), not
  // the first prompt.
  if (backend.keeps_weights())
    for (auto& e : encoders_) e->encode("");
}

Generator::Generator(DecodeOnly, const DenoiserSpec& spec, const std::string& model, Backend& backend,
                     const PartFiles& files)
    : spec_(&spec) {
  for (const PartSlot& slot : spec.parts())
    if (slot.kind == PartKind::LatentCodec) open_codec(slot, spec, model, backend, files);
  if (!codec_) fail(model, " has no VAE to decode its latents with");
}

void Generator::open_image_encoder(const DenoiserSpec& spec, const std::string& model, Backend& backend,
                                   const PartFiles& files) {
  spec_ = &spec;
  for (const PartSlot& slot : spec.parts())
    if (slot.kind == PartKind::ImageEncoder) {
      if (files.image_encoder.empty()) fail(model, " needs a ", slot.what, " (--clip-vision FILE)");
      image_encoder_ = make_image_encoder(open_store(files.image_encoder, PartKind::ImageEncoder), backend,
                                         files.image_encoder);
    }
}

void Generator::open_codec(const PartSlot& slot, const DenoiserSpec& spec, const std::string& model,
                           Backend& backend, const PartFiles& files) {
  if (files.codec.empty()) fail(model, " needs a ", slot.what, " (--vae FILE)", not_inside(model, slot));
  codec_ = make_latent_codec(open_part(files.codec, slot), backend, files.codec);
  if (codec_->item_rank() != spec.latent_format().item_rank)
    fail("VAE ", files.codec, " (", codec_->variant(), ") decodes ", codec_->item_rank() == 3 ? "pictures" : "videos",
         " but the DiT ", model, " makes ", spec.latent_format().item_rank == 3 ? "pictures" : "videos");
  const int64_t channels = spec.latent_format().channels;
  if (codec_->latent_channels() != channels)
    fail("VAE ", files.codec, " has ", codec_->latent_channels(), " latent channels but the DiT ", model,
         " makes ", channels);
}

Generator::~Generator() = default;

Conditioning Generator::encode(const std::string& prompt) {
  Conditioning c;
  for (auto& e : encoders_)
    for (auto& [name, t] : e->encode(prompt)) c[name] = t;
  return c;
}

Conditioning Generator::condition_on_images(const std::vector<Tensor>& images, const Shape& item) {
  if (!spec_) fail("generate: this rank holds only the VAE's decoder side");
  return spec_->image_conditioning(images, item, *codec_, image_encoder_.get());
}

Tensor Generator::decode(const Tensor& latent) { return codec_->decode(latent); }

Tensor Generator::decode(const Tensor& latent, const Shape& item, const VaeTileRequest& tiles, Communicator& group) {
  // Rank 0 plans (its held bytes decide under a memory limit); the others follow its tile size.
  int64_t tile[3] = {0, 0, 0};  // tiled?, tile_h, tile_w in latent pixels
  if (group.rank() == 0)
    if (const auto plan = vae_tile_plan(*codec_, item, tiles)) {
      tile[0] = 1;
      tile[1] = plan->rows > 1 ? plan->tiles.front().core.height() : 0;
      tile[2] = plan->columns > 1 ? plan->tiles.front().core.width() : 0;
    }
  if (tiles.ranks > 1) group.broadcast(tile, sizeof tile, 0);
  if (!tile[0]) {
    if (group.rank() == 0) return codec_->decode(latent);
    return {};
  }
  const TilePlan plan = plan_tiles(codec_->tiling(), item[item.size() - 2], item[item.size() - 1], tile[1], tile[2]);
  if (tiles.ranks > 1) return decode_tiles_on_ranks(*codec_, latent, plan, group);
  return decode_tiles(*codec_, latent, plan);
}

bool decode_on_every_rank(const GenerateRequest& r) { return r.vae_tiles.ranks > 1; }

void Generator::write(const Tensor& latent, const std::string& path, double fps) {
  write_output(path, decode(latent), fps);
}

namespace {

bool makes_pictures(const DenoiserSpec& spec) { return spec.latent_format().item_rank == 3; }

}  // namespace

void check_output_path(const std::string& path, const DenoiserSpec& spec) {
  if (!makes_pictures(spec)) {
    video::video_format_of(path);
  } else if (!is_image_path(path)) {
    check_image_output(path);  // throws, naming the picture formats
  }
}

void check_output_target(const std::string& path, const DenoiserSpec& spec) {
  if (makes_pictures(spec)) check_image_output(path);
  else check_video_output(path);
}

void write_output(const std::string& path, const Tensor& pixels, double fps) {
  if (pixels.ndim() == 3) write_image(path, pixels);
  else write_video(path, pixels, fps);
}

void check_image_count(const DenoiserSpec& spec, const std::string& model, size_t count) {
  const ImageInputs in = spec.image_inputs();
  const std::string name = model + " (" + spec.variant() + ")";
  if (in.max_images == 0 && count > 0)
    fail(name, " takes no image: --image is for image-to-video models");
  if (count < static_cast<size_t>(in.min_images) && count == 0)
    fail(name, " is an image-to-video model: give ", in.what, " with --image FILE");
  if (count > static_cast<size_t>(in.max_images))
    fail(name, " takes ", in.what, "; ", count,
         " pictures were given (--last-image needs a first-last-frame model, FLF2V)");
  if (count < static_cast<size_t>(in.min_images))
    fail(name, " is a first-last-frame model: give the last frame too (--last-image FILE)");
}

void broadcast_conditioning(Communicator& group, Conditioning& c, int root) {
  if (group.size() == 1) return;
  // Count, then per tensor: name, shape, fp32 values.
  uint64_t count = c.size();
  group.broadcast(&count, sizeof count, root);
  auto it = c.begin();
  Conditioning received;
  for (uint64_t i = 0; i < count; ++i) {
    const bool mine = group.rank() == root;
    std::string name = mine ? it->first : std::string();
    Tensor t = mine ? it->second.to_f32() : Tensor();
    uint64_t len = name.size();
    group.broadcast(&len, sizeof len, root);
    name.resize(len);
    group.broadcast(name.data(), len, root);
    uint64_t ndim = mine ? t.shape().size() : 0;
    group.broadcast(&ndim, sizeof ndim, root);
    Shape shape(ndim);
    if (mine) shape = t.shape();
    group.broadcast(shape.data(), ndim * sizeof(int64_t), root);
    if (!mine) t = Tensor::empty(shape);
    group.broadcast(t.raw(), t.nbytes(), root);
    received[name] = t;
    if (mine) ++it;
  }
  c = std::move(received);
}

GenerateTimings generate(LoadedModel& model, Generator* parts, const GenerateRequest& r, const StepCallback& on_step) {
  const DenoiserSpec& spec = *model.spec;
  check_output_path(r.out, spec);
  spec.latent_shape(r.options.size);  // a size that does not fit fails before any work
  const bool lead = Runtime::world_rank() == 0;
  if (lead && !parts) fail("generate: rank 0 needs the text encoders and the VAE");
  if (lead) check_image_count(spec, spec.variant(), r.images.size());
  GenerateTimings t;
  auto t0 = std::chrono::steady_clock::now();
  const bool guided = r.options.cfg != 1.0 || r.options.cfg_low.value_or(1.0) != 1.0;
  Conditioning positive, negative, shared;
  if (lead) {
    positive = parts->encode(r.prompt);
    if (guided) negative = parts->encode(r.negative_prompt);
    // The pictures' conditioning is the same for both prompts: made once, sent once.
    if (!r.images.empty()) shared = parts->condition_on_images(r.images, spec.latent_shape(r.options.size));
    // Reference latents are shared by both prompts.
    if (!r.reference_images.empty())
      for (const auto& [name, t] : encode_references(spec, parts->codec(), r.reference_images, r.resize_references)) {
        positive[name] = t;
        if (guided) negative[name] = t;
      }
  }
  broadcast_conditioning(*model.groups.world, positive);
  if (guided) broadcast_conditioning(*model.groups.world, negative);
  if (spec.image_inputs().max_images > 0) broadcast_conditioning(*model.groups.world, shared);
  for (const auto& [name, tensor] : shared) {
    positive[name] = tensor;
    if (guided) negative[name] = tensor;
  }
  t.encode_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  const int64_t seeds = model.groups.layout.dp;
  const SampleJob job = make_sample_job(spec, r.options, positive, negative, seeds);
  SampleHooks hooks;
  if (on_step) hooks.after_step = [&](int done, int total) { on_step(done, total); };
  Tensor latent = run_sample_job(model, job, hooks);
  t.sample_s = seconds_since(t0);
  const bool every_rank = decode_on_every_rank(r);
  if (every_rank && r.vae_tiles.ranks != model.groups.world->size())
    fail("generate: the decode is spread over ", r.vae_tiles.ranks, " ranks but the job has ",
         model.groups.world->size());
  if (every_rank && !parts) fail("generate: rank ", Runtime::world_rank(), " needs the VAE to decode tiles");
  if (!lead && !every_rank) return t;

  // Data parallel gives one latent per seed: each becomes its own file, out_<i>.ext.
  const int64_t n = shape_numel(job.item_shape);
  for (int64_t i = 0; i < seeds; ++i) {
    Tensor item;  // rank 0's counts; the others take part in its decode
    if (lead) item = seeds == 1 ? latent : latent.reshape({seeds, n}).slice_rows(i, i + 1).reshape(job.item_shape);
    std::string path = r.out;
    if (seeds > 1) {
      const fs::path p(r.out);
      path = (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + p.extension().string())).string();
    }
    t0 = std::chrono::steady_clock::now();
    Tensor pixels = parts->decode(item, job.item_shape, r.vae_tiles, *model.groups.world);
    t.decode_s += seconds_since(t0);
    if (!lead) continue;
    t0 = std::chrono::steady_clock::now();
    write_output(path, pixels, r.fps);
    t.write_s += seconds_since(t0);
  }
  return t;
}

}  // namespace raylight
