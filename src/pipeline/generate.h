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

// The files of the parts besides the denoiser (paths or embedded names like "tiny").
struct PartFiles {
  std::vector<std::string> text_encoders;  // one per text-encoder slot of the family, in order
                                           // (Flux: T5-XXL, then CLIP-L)
  std::string tokenizer;                   // optional, for a text encoder without one inside
  std::string codec;
};

class Generator {
 public:
  // Opens and checks the parts `spec` needs on `backend`; `model` names the denoiser in
  // messages. Errors name the file at fault and what does not fit.
  Generator(const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  // Only the codec (the other ranks of a job whose decode is spread over its ranks).
  struct DecodeOnly {};
  Generator(DecodeOnly, const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  ~Generator();
  // One prompt's conditioning tensors, from every text encoder.
  Conditioning encode(const std::string& prompt);
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
  void open_codec(const DenoiserSpec& spec, const std::string& model, Backend& backend, const PartFiles& files);
  std::vector<std::unique_ptr<TextEncoder>> encoders_;
  std::unique_ptr<LatentCodec> codec_;
};

// Fails unless `path` has an output format this build writes for `spec`'s outputs
// (pictures for image families, videos otherwise), before any work.
void check_output_path(const std::string& path, const DenoiserSpec& spec);
// Also applies the output file policy (io/output_file.h: no folder, device or socket as the
// output): the rank that writes calls it.
void check_output_target(const std::string& path, const DenoiserSpec& spec);
// Decoded pixels into the file at `path`: a picture for [3, H, W], a video for [3, F, H, W].
void write_output(const std::string& path, const Tensor& pixels, double fps);

// Fails unless `spec` takes `count` start frames (the shared input "first_frame": at most one).
void check_first_frame_images(const DenoiserSpec& spec, size_t count);

// The root's conditioning on every rank of `group` (fp32 host tensors).
void broadcast_conditioning(Communicator& group, Conditioning& conditioning, int root = 0);

struct GenerateRequest {
  std::string prompt, negative_prompt;
  SampleOptions options;
  std::string out;
  double fps = 16.0;
  // Pictures the model is conditioned on, host fp32 [3, H, W] in [-1, 1] (TI2V: the start
  // frame, encoded on rank 0 into the shared "first_frame" input and sent to every rank).
  std::vector<Tensor> images;
  // --vae-tile / --gpu-memory-limit; with `ranks` > 1 the decode is spread over the job's
  // ranks, and every rank passes its Generator (DecodeOnly on ranks other than 0).
  VaeTileRequest vae_tiles;
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
