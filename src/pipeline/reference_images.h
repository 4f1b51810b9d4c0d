// Reference pictures (`--image`, the server's "images") for families that take reference
// latents ("reference.N" conditioning inputs: Flux Kontext). Each picture is read
// (io/image), fitted to the size its family asks for (DenoiserSpec::reference_size: with
// resizing, a centre crop to that aspect ratio then Pillow-exact Lanczos, as ComfyUI's
// FluxKontextImageScale; without, a centre crop only), encoded by the family's VAE and given
// as "reference.<i>", shared by both prompts.
#pragma once

#include <string>
#include <vector>

#include "models/family.h"

namespace raylight {

// How many reference pictures `spec` takes (0: none).
int reference_slots(const DenoiserSpec& spec);

// Refuses more pictures than `spec` takes, naming the model.
void check_reference_count(const DenoiserSpec& spec, size_t pictures);

// The picture at `path` fitted for `spec`: [3, H, W] in [-1, 1].
Tensor reference_pixels(const DenoiserSpec& spec, const std::string& path, bool resize);

// The size reference_pixels gives (the default output size of an edit).
OutputSize reference_picture_size(const DenoiserSpec& spec, const std::string& path, bool resize);

// Every picture fitted and encoded: {"reference.0": latent, ...}.
Conditioning encode_references(const DenoiserSpec& spec, LatentCodec& codec, const std::vector<std::string>& paths,
                               bool resize);

}  // namespace raylight
