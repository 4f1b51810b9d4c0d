#include "models/vae/wan22_vae_codec.h"

#include <algorithm>
#include <sstream>

#include "models/vae/wan22_vae.h"

namespace raylight {
namespace {

std::string describe(const Wan22VaeConfig& c) {
  std::ostringstream os;
  os << "Wan 2.2 VAE (";
  if (c.has_encoder) os << "encoder width " << c.enc_dim << ", ";
  os << "decoder width " << c.dec_dim << ", " << c.z_dim << " latent channels"
     << (c.has_encoder ? "" : ", decoder only") << ")";
  return os.str();
}

// The decode's device memory, bf16 activations, on the high side (x 1.15 for the caching
// allocator), as wan_vae_memory.h: per region of h x w latent pixels the causal caches (2
// input frames per 3x3x3 conv and time_conv), the largest live set of one layer on one chunk
// (a block's input, normed copy, two conv outputs; a level's kept input and its shortcut's
// selection output), and the conv scratch.
constexpr double kBf16 = 2.0, kSlack = 1.15;
constexpr double kConvScratch = 2.0 * 256 * 1024 * 1024;

double region_bytes(const Wan22VaeConfig& c, int64_t h, int64_t w) {
  double pixels = static_cast<double>(h) * static_cast<double>(w), frames = 1;
  const double top = static_cast<double>(wan22_vae_decoder_top(c));
  double caches = 4 * top * pixels, live = 4 * top * pixels;
  for (const auto& l : wan22_vae_decoder_levels(c)) {
    const double in = static_cast<double>(l.in_dim), out = static_cast<double>(l.out_dim);
    const double kept = frames * pixels * in;  // the level input, for the shortcut
    caches += 2 * (in + out) * pixels + 2 * out * pixels * (l.blocks - 1) * 2;
    live = std::max(live, kept + frames * pixels * (in + 3 * out));
    if (!l.resample) continue;
    if (l.temporal) {
      caches += 2 * out * pixels;
      live = std::max(live, kept + frames * pixels * 3 * out);
      frames *= 2;
    }
    pixels *= 4;
    // upsampled input and conv output, plus the shortcut's selection and its result
    live = std::max(live, kept + 2 * frames * pixels * out + 2 * frames * pixels * out);
  }
  const double d = static_cast<double>(c.dec_dim);
  caches += 2 * d * pixels;
  live = std::max(live, frames * pixels * (2 * d + 12));
  return kSlack * (kBf16 * (caches + live) + kConvScratch);
}

double shared_bytes(const Wan22VaeConfig& c, int64_t h, int64_t w) {
  const double pixels = static_cast<double>(h) * static_cast<double>(w);
  const double top = static_cast<double>(wan22_vae_decoder_top(c)), z = static_cast<double>(c.z_dim);
  const double caches = 2 * z * pixels + 4 * top * pixels, live = 5 * top * pixels;
  const double scores = 4.0 * pixels * pixels;
  return kSlack * (kBf16 * (caches + live) + scores + kConvScratch);
}

class Wan22VaeCodec final : public LatentCodec {
 public:
  explicit Wan22VaeCodec(std::unique_ptr<Wan22Vae> vae) : vae_(std::move(vae)) {}
  std::string variant() const override { return describe(vae_->config()); }
  int64_t latent_channels() const override { return vae_->config().z_dim; }
  Tensor decode(const Tensor& latent, const Progress& progress) override { return vae_->decode(latent, progress); }
  Tensor encode(const Tensor& pixels, const Progress& progress) override { return vae_->encode(pixels, progress); }
  LatentTiling tiling() const override { return {16, vae_->region_context()}; }
  std::unique_ptr<RegionDecoder> region_decoder(const Tensor& latent) override { return vae_->regions(latent); }
  double region_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return region_bytes(vae_->config(), h, w);
  }
  double shared_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return shared_bytes(vae_->config(), h, w);
  }
  double weight_bytes() const override {
    double n = 0;
    for (const auto& [name, shape] : wan22_vae_expected_tensors(vae_->config()))
      n += static_cast<double>(shape_numel(shape));
    return kBf16 * n;
  }

 private:
  std::unique_ptr<Wan22Vae> vae_;
};

}  // namespace

bool wan22_vae_matches(const WeightStore& weights) { return wan22_vae_layout(weights); }

std::string wan22_vae_variant(const WeightStore& weights, const std::string& source) {
  return describe(detect_wan22_vae_config(weights, source));
}

std::unique_ptr<LatentCodec> make_wan22_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                  const std::string& source) {
  return std::make_unique<Wan22VaeCodec>(Wan22Vae::from_weights(std::move(weights), backend, source));
}

}  // namespace raylight
