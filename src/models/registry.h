// The family registry: the one place that lists the families and their parts. Everything
// above src/models asks here what a file is, opens weights, and builds parts, so the
// pipeline, server and CLI never name a family (adding one: docs/architecture.md).
//
// Sources are a safetensors path or the name of an embedded model ("tiny": random weights
// in the real architectures, made in code, for tests; "demo": small trained weights compiled
// into the binary, the default of `generate`). Models receive a weight store, never a path:
// open_store() is the one way to open weights.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/family.h"

namespace raylight {

// What a file (or embedded model) is.
struct Recognition {
  PartKind part = PartKind::Denoiser;
  std::string family;   // "Wan 2.1", "umT5", ...
  std::string variant;  // "Wan2.1 T2V 1.3B", "umT5-XXL", ...
  std::string summary;  // shape facts, one line
  std::string note;     // where tensors cannot tell variants apart: what decides, else ""
};

// True for the names of embedded models ("tiny", "demo").
bool is_embedded_model(const std::string& source);
// Names of the embedded models, for help text ("tiny", "demo", "tiny-flux").
std::vector<std::string> embedded_model_names();
// The embedded sources of `model`'s parts of one kind, in the order of the family's part
// slots (tiny-flux's text encoders: "tiny-flux" (T5), "tiny-flux-clip" (CLIP)).
std::vector<std::string> embedded_parts(const std::string& model, PartKind part);
// The weights of `source` for a part: an embedded model's, or a memory-mapped safetensors
// file (errors say when it does not exist, is not a regular file or is malformed).
std::unique_ptr<WeightStore> open_store(const std::string& source, PartKind part);

// All-in-one checkpoints (ComfyUI models/checkpoints: the DiT under "model.diffusion_model."
// and its parts under the prefixes of the family's slots, PartSlot::checkpoint_prefixes).
// The prefix under which the file `source` holds `slot`'s part; nullopt when it holds none
// (or `source` is an embedded name). A part under two of the slot's prefixes is refused.
std::optional<std::string> checkpoint_part_prefix(const std::string& source, const PartSlot& slot);
// The weights of the part filling `slot` from `source`: its part (under its prefix, read
// lazily from the same memory map) when `source` is an all-in-one checkpoint holding one,
// else open_store(source, slot.kind).
std::unique_ptr<WeightStore> open_part(const std::string& source, const PartSlot& slot);

// Which family and part a store holds (nullopt: none it knows). Checks every tensor of the
// family it matches, so a damaged file fails here naming the tensor. `source` (a path) and
// `variant` (--variant) decide what tensors cannot.
std::optional<Recognition> recognise(const WeightStore& weights, const std::string& source,
                                     const std::string& variant = "");

// The spec of a denoiser store. Errors name `source` and, for a file of another kind or a
// damaged one, what it is or which tensor does not fit. `variant` as for recognise().
std::shared_ptr<const DenoiserSpec> denoiser_spec(const WeightStore& weights, const std::string& source,
                                                  const std::string& variant = "");
// A denoiser store as its family reads it (a key prefix taken off) with its spec.
struct DenoiserWeights {
  std::unique_ptr<WeightStore> weights;
  std::shared_ptr<const DenoiserSpec> spec;
};
DenoiserWeights as_denoiser(std::unique_ptr<WeightStore> weights, const std::string& source,
                            const std::string& variant = "");

// Parts built over a store; errors name `source`. The part must be of a kind the registry
// knows (e.g. a DiT given as a text encoder is refused, naming what it is).
std::unique_ptr<TextEncoder> make_text_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                               const std::string& source, const std::string& tokenizer = "");
std::unique_ptr<LatentCodec> make_latent_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                               const std::string& source);
std::unique_ptr<ImageEncoder> make_image_encoder(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                 const std::string& source);

// The denoiser family used when none is named yet (ComfyUI folder search without --model).
std::shared_ptr<const DenoiserSpec> default_denoiser_spec();

// Random-weight models at real shapes for benchmarks: every tensor name and shape, the
// metadata a checkpoint would carry, and which tensors are block matrices (fp8 candidates).
struct BenchModel {
  std::string name;  // "wan-1.3b"
  std::vector<std::pair<std::string, Shape>> tensors;
  std::map<std::string, std::string> metadata;
  std::function<bool(const std::string&)> is_block_matrix;
};
std::vector<BenchModel> bench_models();

// "Wan 2.1 (T2V, I2V)" ...: the families this build runs, for help text.
std::string family_list();

}  // namespace raylight
