// Prompt -> picture or video, on a loaded model of any family: the family's text encoders
// turn the prompts into conditioning, the one sampling path (sample_job.h) samples, the
// family's latent codec decodes, and the file is written. Rank 0 holds the encoders and the
// codec (a Generator); the other ranks receive the conditioning and take part in sampling.
// Every part is opened and checked against the denoiser before any minutes of work start.
// `raylight generate` runs generate(); the server runs the same pieces between its phases.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "models/family.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "pipeline/tiled_decode.h"

namespace raylight {

// The files of the parts besides the denoiser (paths or embedded names like "tiny"). A path
// may be an all-in-one checkpoint: the part of the slot it fills is read from it.
struct PartFiles {
  std::vector<std::string> text_encoders;  // one per text-encoder slot of the family, in order
                                           // (Flux: T5-XXL, then CLIP-L)
  std::string tokenizer;                   // optional, for a text encoder without one inside
  std::string codec;
  std::string image_encoder;               // image-to-video models with a CLIP branch (--clip-vision)
};

class Generator {
 public:
  // Opens and checks the parts `spec` needs on `backend`; `model` names the denoiser in
  // messages. Errors name the file at fault and what does not fit.
  Generator(const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  // Only the codec (the other ranks of a job whose decode is spread over its ranks).
  struct DecodeOnly {};
  Generator(DecodeOnly, const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  // Only the text encoders (the server's text-encode endpoint).
  struct EncodeOnly {};
  Generator(EncodeOnly, const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  ~Generator();
  // One prompt's conditioning tensors, from every text encoder.
  Conditioning encode(const std::string& prompt);
  // The shared conditioning made from the pictures a model is conditioned on (image-to-
  // video: y, clip_fea) for a latent item of shape `item` (DenoiserSpec::image_conditioning).
  Conditioning condition_on_images(const std::vector<Tensor>& images, const Shape& item);
  // Opens the image encoder `spec` takes (--clip-vision; none for models without a CLIP
  // branch) beside this generator's codec, so a decode-only generator can condition on
  // pictures too (the server opens it on the rank that encodes, only when asked to).
  void open_image_encoder(const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  bool has_image_encoder() const { return image_encoder_ != nullptr; }
  // A latent item -> pixels in [-1, 1], [3, F, H, W] (or [3, H, W]).
  Tensor decode(const Tensor& latent);
  // The same, by tiles where `tiles` asks for them, on every rank of `group` (each with its
  // Generator; rank 0's latent counts, and rank 0 gets the pixels, the others nothing).
  // Rank 0 decides the tile plan and tells the others.
  Tensor decode(const Tensor& latent, const Shape& item, const VaeTileRequest& tiles, Communicator& group);
  LatentCodec& codec() { return *codec_; }
  // decode() and the file at `path` (format from its extension), written whole or not at all:
  // a picture (io/image) or a video (io/video) as the codec's output is [3, H, W] or [3, F, H, W].
  void write(const Tensor& latent, const std::string& path, double fps);

 private:
  void open_codec(const PartSlot& slot, const DenoiserSpec& spec, const std::string& model, Backend& backend,
                  const PartFiles& files);
  // Opens the text encoders of `files` and checks them against `spec`; the names they make.
  std::vector<std::string> open_encoders(const DenoiserSpec& spec, const std::string& model, Backend& backend,
                                         const PartFiles& files);
  void warm_encoders(Backend& backend);
  const DenoiserSpec* spec_ = nullptr;
  std::vector<std::unique_ptr<TextEncoder>> encoders_;
  std::unique_ptr<ImageEncoder> image_encoder_;
  std::unique_ptr<LatentCodec> codec_;
};

// Fails naming the first part `spec` needs that `files` leaves empty (the flag that gives it,
// and where an all-in-one checkpoint would hold it), or an image encoder it takes none of,
// before anything is loaded.
void check_parts_given(const DenoiserSpec& spec, const std::string& model, const PartFiles& files);

// Fails unless `path` has an output format this build writes for `spec`'s outputs
// (pictures for image families, videos otherwise), before any work.
void check_output_path(const std::string& path, const DenoiserSpec& spec);
// Also applies the output file policy (io/output_file.h: no folder, device or socket as the
// output): the rank that writes calls it.
void check_output_target(const std::string& path, const DenoiserSpec& spec);
// Decoded pixels into the file at `path`: a picture for [3, H, W], a video for [3, F, H, W].
void write_output(const std::string& path, const Tensor& pixels, double fps);

// Fails unless `count` pictures are what `spec` is conditioned on (none for text-to-video;
// a start frame, and a last frame for first-last-frame models); `model` names it.
void check_image_count(const DenoiserSpec& spec, const std::string& model, size_t count);

// The root's conditioning on every rank of `group` (fp32 host tensors).
void broadcast_conditioning(Communicator& group, Conditioning& conditioning, int root = 0);

struct GenerateRequest {
  std::string prompt, negative_prompt;
  SampleOptions options;
  std::string out;
  double fps = 16.0;
  // Pictures the model is conditioned on, host fp32 [3, H, W] in [-1, 1] (image-to-video:
  // the start frame, then the last frame for FLF2V); rank 0's count. Encoded once, on rank
  // 0, and shared with every rank.
  std::vector<Tensor> images;
  // --vae-tile / --gpu-memory-limit; with `ranks` > 1 the decode is spread over the job's
  // ranks, and every rank passes its Generator (DecodeOnly on ranks other than 0).
  VaeTileRequest vae_tiles;
  // Reference pictures (pipeline/reference_images.h) for models that take them, and whether
  // they are resized to the family's preferred size.
  std::vector<std::string> reference_images;
  bool resize_references = true;
};

// Whether a job's decode runs on every rank (so every rank needs a DecodeOnly Generator).
bool decode_on_every_rank(const GenerateRequest& request);

struct GenerateTimings {
  double encode_s = 0, sample_s = 0, decode_s = 0, write_s = 0;
};

// The whole job; every rank calls it, rank 0 with its Generator (others pass null, or
// their DecodeOnly one when decode_on_every_rank). With
// data parallel each seed's output is its own file, out_<i>.ext.
GenerateTimings generate(LoadedModel& model, Generator* parts, const GenerateRequest& request,
                         const StepCallback& on_step = {});

}  // namespace raylight
