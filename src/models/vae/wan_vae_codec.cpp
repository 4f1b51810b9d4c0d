#include "models/vae/wan_vae_codec.h"

#include <sstream>

#include "models/vae/wan22_vae_config.h"
#include "models/vae/wan_vae_memory.h"

namespace raylight {
namespace {

std::string describe(const WanVaeConfig& c) {
  std::ostringstream os;
  os << "Wan 2.1 VAE (base width " << c.base_dim << ", " << c.z_dim << " latent channels"
     << (c.has_encoder ? "" : ", decoder only") << ")";
  return os.str();
}

class WanVaeCodec final : public LatentCodec {
 public:
  explicit WanVaeCodec(std::unique_ptr<WanVae> vae) : vae_(std::move(vae)) {}
  std::string variant() const override { return describe(vae_->config()); }
  int64_t latent_channels() const override { return vae_->config().z_dim; }
  Tensor decode(const Tensor& latent, const Progress& progress) override { return vae_->decode(latent, progress); }
  Tensor encode(const Tensor& pixels, const Progress& progress) override { return vae_->encode(pixels, progress); }
  LatentTiling tiling() const override { return {8, vae_->region_context()}; }
  std::unique_ptr<RegionDecoder> region_decoder(const Tensor& latent) override { return vae_->regions(latent); }
  double region_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return wan_vae_region_decode_bytes(vae_->config(), h, w);
  }
  double shared_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return wan_vae_shared_decode_bytes(vae_->config(), h, w);
  }
  double weight_bytes() const override { return wan_vae_weight_bytes(vae_->config()); }

 private:
  std::unique_ptr<WanVae> vae_;
};

}  // namespace

bool wan_vae_matches(const WeightStore& weights) {
  // Wan 2.2's VAE shares these anchors; its level blocks (wan22_vae_config.h) tell it apart.
  return weights.has("decoder.conv1.weight") && weights.has("conv2.weight") && !wan22_vae_layout(weights);
}

std::string wan_vae_variant(const WeightStore& weights, const std::string& source) {
  return describe(detect_wan_vae_config(weights, source));
}

std::unique_ptr<LatentCodec> make_wan_vae_codec(std::unique_ptr<WeightStore> weights, Backend& backend,
                                                const std::string& source) {
  return std::make_unique<WanVaeCodec>(WanVae::from_weights(std::move(weights), backend, source));
}

}  // namespace raylight
