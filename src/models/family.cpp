#include "models/family.h"

#include "core/error.h"
#include "models/common/latent_tiles.h"


namespace raylight {

const char* part_kind_name(PartKind kind) {
  switch (kind) {
    case PartKind::Denoiser: return "DiT";
    case PartKind::TextEncoder: return "text encoder";
    case PartKind::LatentCodec: return "VAE";
    case PartKind::ImageEncoder: return "image encoder";
  }
  return "part";
}

void TextEncoder::set_padding(int64_t tokens) {
  if (tokens != 0) fail("text encoder ", variant(), " cannot pad prompts to ", tokens, " tokens");
}

namespace {

// Crops the latent and decodes the crop: exact for codecs whose layers are all local.
class CroppingRegionDecoder final : public RegionDecoder {
 public:
  CroppingRegionDecoder(LatentCodec& codec, Tensor latent) : codec_(codec), latent_(std::move(latent)) {}
  Tensor decode(const LatentRegion& r) override { return codec_.decode(crop_latent(latent_, r)); }

 private:
  LatentCodec& codec_;
  Tensor latent_;
};

}  // namespace

std::unique_ptr<RegionDecoder> LatentCodec::region_decoder(const Tensor& latent) {
  if (tiling().scale <= 0) fail("this VAE (", variant(), ") cannot decode by tiles");
  return std::make_unique<CroppingRegionDecoder>(*this, latent.to_f32());
}

std::string negative_name(const std::string& input) { return input == "context" ? "negative" : "negative_" + input; }

std::vector<std::string> DenoiserSpec::lora_stems(const std::string& weight) const {
  const std::string suffix = ".weight";
  const bool is_weight = weight.size() > suffix.size() &&
                         weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) == 0;
  if (!is_weight) return {weight, "diffusion_model." + weight};
  const std::string stem = weight.substr(0, weight.size() - suffix.size());
  std::string flat = stem;
  for (char& ch : flat)
    if (ch == '.') ch = '_';
  return {stem, "diffusion_model." + stem, "model.diffusion_model." + stem, "lora_unet_" + flat};
}

}  // namespace raylight

namespace raylight {

Conditioning DenoiserSpec::image_conditioning(const std::vector<Tensor>& images, const Shape&, LatentCodec&,
                                              ImageEncoder*) const {
  fail(variant(), " takes no image (", images.size(), " given): it is not an image-to-video model");
}

}  // namespace raylight
