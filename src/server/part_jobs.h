// The part endpoints: the loaded model's text encoders and VAE run on the server's ranks
// for clients that do the rest themselves (the ComfyUI nodes beside ComfyUI's own).
//   POST /v1/text/encode  JSON {"prompt", "text_encoder", "text_encoder_2", "tokenizer"}
//                         -> safetensors: the conditioning tensors the family's encoders make
//   POST /v1/vae/decode   safetensors `latent` (the model's space, as /v1/sample returns it),
//                         metadata "request" {"vae", "tile": "HxW", "spread": bool}
//                         -> safetensors `pixels` in [-1, 1]
//   POST /v1/vae/encode   safetensors `pixels` in [-1, 1], metadata "request" {"vae"}
//                         -> safetensors `latent` in the model's space
// The part files default to an embedded model's own, as for /v1/generate; every check here
// runs on rank 0's HTTP thread before a job is queued and again on the ranks.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/tensor.h"
#include "models/family.h"
#include "pipeline/generate.h"

namespace raylight::server {

struct TextEncodeRequest {
  std::string prompt;
  PartFiles parts;  // text encoders and tokenizer only
};

// A VAE job's tensor and options. `items` is the tensor with a batch dimension (one item
// when the request had none); `batched` says whether the answer keeps it.
struct CodecRequest {
  Tensor items;
  bool batched = false;
  PartFiles parts;  // the codec only
  VaeTileRequest tiles;
  bool spread = true;  // decode: tiles over every rank (where the codec tiles)
};

// The decoded result's largest size in bytes (fp32): the answer is one response body.
constexpr double kMaxDecodedBytes = 4.0 * (1ull << 30);

TextEncodeRequest parse_text_encode_request(const nlohmann::json& j, const DenoiserSpec& model);
CodecRequest parse_vae_decode_body(std::string_view body, const DenoiserSpec& model);
CodecRequest parse_vae_encode_body(std::string_view body, const DenoiserSpec& model);

// Opens the named part files (not their weights) and checks each is the kind of part its
// field says (rank 0, before queueing), as check_generate_parts does.
void check_part_files(const PartFiles& parts);

}  // namespace raylight::server
