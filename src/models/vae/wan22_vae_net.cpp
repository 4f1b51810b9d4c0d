#include "models/vae/wan22_vae_net.h"

namespace raylight {
namespace {

void add_middle(VaeStack& s, const std::string& p, int64_t dim) {
  s.add<ResidualBlock>(p + "middle.0.", dim, dim);
  s.add<AttentionBlock>(p + "middle.1.");
  s.add<ResidualBlock>(p + "middle.2.", dim, dim);
}

VaeStack level_blocks(const std::string& p, const Wan22VaeLevel& l, bool decoder) {
  VaeStack s;
  int64_t in = l.in_dim;
  for (int b = 0; b < l.blocks; ++b, in = l.out_dim) s.add<ResidualBlock>(p + std::to_string(b) + ".", in, l.out_dim);
  if (l.resample) {
    const std::string r = p + std::to_string(l.blocks) + ".";
    if (decoder) s.add<Upsampler>(r, l.temporal);
    else s.add<Downsampler>(r, l.temporal);
  }
  return s;
}

}  // namespace

VaeStack make_wan22_vae_decoder_prefix(const Wan22VaeConfig& c) {
  VaeStack s;
  const int64_t top = wan22_vae_decoder_top(c);
  s.add<CausalConv3d>("conv2", 0);
  s.add<CausalConv3d>("decoder.conv1", 1);
  s.add<ResidualBlock>("decoder.middle.0.", top, top);
  s.add<AttentionBlock>("decoder.middle.1.");
  return s;
}

VaeStack make_wan22_vae_decoder_suffix(const Wan22VaeConfig& c) {
  VaeStack s;
  const int64_t top = wan22_vae_decoder_top(c);
  s.add<ResidualBlock>("decoder.middle.2.", top, top);
  for (const auto& l : wan22_vae_decoder_levels(c)) {
    const auto kind = l.resample ? Wan22Level::Shortcut::DupUp : Wan22Level::Shortcut::None;
    s.add<Wan22Level>(level_blocks("decoder.upsamples." + std::to_string(l.index) + ".upsamples.", l, true), kind,
                      l.in_dim, l.out_dim, l.temporal);
  }
  s.add<NormConvHead>("decoder.head.");
  return s;
}

VaeStack make_wan22_vae_decoder(const Wan22VaeConfig& c) {
  VaeStack s = make_wan22_vae_decoder_prefix(c);
  s.append(make_wan22_vae_decoder_suffix(c));
  return s;
}

int64_t wan22_vae_suffix_context(const Wan22VaeConfig& c) {
  // Every 3x3 conv reads one pixel around at its level; counted in decoder-output pixels
  // (before the 2x2 unpatchify, which with the shortcuts reads no neighbours).
  const auto levels = wan22_vae_decoder_levels(c);
  int64_t final_scale = 1;
  for (const auto& l : levels)
    if (l.resample) final_scale *= 2;
  int64_t scale = 1, reach = 2 * final_scale;  // middle.2
  for (const auto& l : levels) {
    reach += 2 * l.blocks * (final_scale / scale);
    if (l.resample) {
      scale *= 2;
      reach += final_scale / scale;
    }
  }
  reach += final_scale / scale;  // the head
  return (reach + final_scale - 1) / final_scale;
}

VaeStack make_wan22_vae_encoder(const Wan22VaeConfig& c) {
  VaeStack s;
  s.add<CausalConv3d>("encoder.conv1", 1);
  for (const auto& l : wan22_vae_encoder_levels(c)) {
    const auto kind = l.resample ? Wan22Level::Shortcut::AvgDown : Wan22Level::Shortcut::Identity;
    s.add<Wan22Level>(level_blocks("encoder.downsamples." + std::to_string(l.index) + ".downsamples.", l, false),
                      kind, l.in_dim, l.out_dim, l.temporal);
  }
  add_middle(s, "encoder.", wan22_vae_encoder_top(c));
  s.add<NormConvHead>("encoder.head.");
  s.add<CausalConv3d>("conv1", 0);
  return s;
}

}  // namespace raylight
