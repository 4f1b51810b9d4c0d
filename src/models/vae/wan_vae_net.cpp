// Stack assembly only: the order here is the official module order, which is what makes
// the tensor names (encoder.downsamples.N, decoder.upsamples.N) line up.
#include "models/vae/wan_vae_net.h"

namespace raylight {
namespace {

void add_middle(VaeStack& s, const std::string& p, int64_t dim) {
  s.add<ResidualBlock>(p + "middle.0.", dim, dim);
  s.add<AttentionBlock>(p + "middle.1.");
  s.add<ResidualBlock>(p + "middle.2.", dim, dim);
}

}  // namespace

VaeStack make_wan_vae_decoder_prefix(const WanVaeConfig& c) {
  VaeStack s;
  s.add<CausalConv3d>("conv2", 0);
  s.add<CausalConv3d>("decoder.conv1", 1);
  s.add<ResidualBlock>("decoder.middle.0.", wan_vae_middle_dim(c), wan_vae_middle_dim(c));
  s.add<AttentionBlock>("decoder.middle.1.");
  return s;
}

VaeStack make_wan_vae_decoder_suffix(const WanVaeConfig& c) {
  VaeStack s;
  s.add<ResidualBlock>("decoder.middle.2.", wan_vae_middle_dim(c), wan_vae_middle_dim(c));
  for (const auto& st : wan_vae_decoder_stages(c)) {
    const std::string p = "decoder.upsamples." + std::to_string(st.index) + ".";
    if (st.kind == WanVaeStage::Kind::Residual) s.add<ResidualBlock>(p, st.in_dim, st.out_dim);
    else s.add<Upsampler>(p, st.temporal);
  }
  s.add<NormConvHead>("decoder.head.");
  return s;
}

VaeStack make_wan_vae_decoder(const WanVaeConfig& c) {
  VaeStack s = make_wan_vae_decoder_prefix(c);
  s.append(make_wan_vae_decoder_suffix(c));
  return s;
}

int64_t wan_vae_suffix_context(const WanVaeConfig& c) {
  // Every 3x3 conv reads 1 pixel around at its level; count in output pixels. The
  // shortcut (1x1), time_conv (3x1x1) and the norms read no neighbours.
  const auto stages = wan_vae_decoder_stages(c);
  int64_t final_scale = 1;
  for (const auto& st : stages)
    if (st.kind == WanVaeStage::Kind::Resample) final_scale *= 2;
  int64_t scale = 1, reach = 2 * final_scale;  // middle.2: two convs at latent resolution
  for (const auto& st : stages) {
    if (st.kind == WanVaeStage::Kind::Residual) {
      reach += 2 * (final_scale / scale);
    } else {
      scale *= 2;
      reach += final_scale / scale;  // the conv after the 2x upsampling
    }
  }
  reach += final_scale / scale;  // the head's conv
  return (reach + final_scale - 1) / final_scale;
}

VaeStack make_wan_vae_encoder(const WanVaeConfig& c) {
  VaeStack s;
  s.add<CausalConv3d>("encoder.conv1", 1);
  for (const auto& st : wan_vae_encoder_stages(c)) {
    const std::string p = "encoder.downsamples." + std::to_string(st.index) + ".";
    if (st.kind == WanVaeStage::Kind::Residual) s.add<ResidualBlock>(p, st.in_dim, st.out_dim);
    else s.add<Downsampler>(p, st.temporal);
  }
  add_middle(s, "encoder.", wan_vae_middle_dim(c));
  s.add<NormConvHead>("encoder.head.");
  s.add<CausalConv3d>("conv1", 0);
  return s;
}

}  // namespace raylight
