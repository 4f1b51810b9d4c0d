// Level lists, the implied tensor list and detection: the level lists are the one source
// of the architecture (tensor check, tiny weights, layer stacks).
#include "models/vae/wan22_vae_config.h"

#include "core/error.h"
#include "models/vae/wan_vae_tensor_list.h"
#include "parallel/weight_store.h"

namespace raylight {

const float kWan22VaeLatentMean[48] = {
    -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f,  0.1838f,  0.1557f,  -0.1382f, 0.0542f,
    0.2813f,  0.0891f,  0.1570f,  -0.0098f, 0.0375f,  -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f,
    0.2665f,  -0.2108f, -0.2158f, 0.2502f,  -0.2055f, -0.0322f, 0.1109f,  0.1567f,  -0.0729f, 0.0899f,
    -0.2799f, -0.1230f, -0.0313f, -0.1649f, 0.0117f,  0.0723f,  -0.2839f, -0.2083f, -0.0520f, 0.3748f,
    0.0152f,  0.1957f,  0.1433f,  -0.2944f, 0.3573f,  -0.0548f, -0.1681f, -0.0667f};
const float kWan22VaeLatentStd[48] = {
    0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.4990f, 0.4818f, 0.5013f, 0.8158f, 1.0344f,
    0.5894f, 1.0901f, 0.6885f, 0.6165f, 0.8454f, 0.4978f, 0.5759f, 0.3523f, 0.7135f, 0.6804f,
    0.5833f, 1.4146f, 0.8986f, 0.5659f, 0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f,
    0.6866f, 0.4093f, 0.5709f, 0.6065f, 0.6415f, 0.4944f, 0.5726f, 1.2042f, 0.5458f, 1.6887f,
    0.3971f, 1.0600f, 0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f};

std::vector<Wan22VaeLevel> wan22_vae_encoder_levels(const Wan22VaeConfig& c) {
  std::vector<Wan22VaeLevel> out;
  const size_t n = c.dim_mult.size();
  int64_t in = c.enc_dim;
  for (size_t i = 0; i < n; ++i) {
    const int64_t dim = c.enc_dim * c.dim_mult[i];
    const bool last = i + 1 == n;
    out.push_back({static_cast<int>(i), in, dim, c.num_res_blocks, !last, !last && c.temporal_downsample[i]});
    in = dim;
  }
  return out;
}

std::vector<Wan22VaeLevel> wan22_vae_decoder_levels(const Wan22VaeConfig& c) {
  std::vector<Wan22VaeLevel> out;
  const size_t n = c.dim_mult.size();
  int64_t in = c.dec_dim * c.dim_mult.back();
  for (size_t i = 0; i < n; ++i) {
    const int64_t dim = c.dec_dim * c.dim_mult[n - 1 - i];
    const bool last = i + 1 == n;
    out.push_back(
        {static_cast<int>(i), in, dim, c.num_res_blocks + 1, !last, !last && c.temporal_downsample[n - 2 - i]});
    in = dim;
  }
  return out;
}

int64_t wan22_vae_encoder_top(const Wan22VaeConfig& c) { return c.enc_dim * c.dim_mult.back(); }
int64_t wan22_vae_decoder_top(const Wan22VaeConfig& c) { return c.dec_dim * c.dim_mult.back(); }

using namespace wan_vae_tensors;

namespace {

void add_level(TensorList& t, const std::string& p, const Wan22VaeLevel& l, bool decoder) {
  int64_t in = l.in_dim;
  for (int b = 0; b < l.blocks; ++b, in = l.out_dim) add_residual(t, p + std::to_string(b) + ".", in, l.out_dim);
  if (!l.resample) return;
  const std::string r = p + std::to_string(l.blocks) + ".";
  add_conv(t, r + "resample.1", {l.out_dim, l.out_dim, 3, 3});
  if (l.temporal) add_conv(t, r + "time_conv", {(decoder ? 2 : 1) * l.out_dim, l.out_dim, 3, 1, 1});
}

}  // namespace

TensorList wan22_vae_expected_tensors(const Wan22VaeConfig& c) {
  TensorList t;
  const int64_t z = c.z_dim;
  if (c.has_encoder) {
    const int64_t top = wan22_vae_encoder_top(c);
    add_conv(t, "encoder.conv1", {c.enc_dim, 12, 3, 3, 3});
    for (const auto& l : wan22_vae_encoder_levels(c))
      add_level(t, "encoder.downsamples." + std::to_string(l.index) + ".downsamples.", l, false);
    add_middle(t, "encoder.", top);
    t.emplace_back("encoder.head.0.gamma", Shape{top, 1, 1, 1});
    add_conv(t, "encoder.head.2", {2 * z, top, 3, 3, 3});
    add_conv(t, "conv1", {2 * z, 2 * z, 1, 1, 1});
  }
  const int64_t top = wan22_vae_decoder_top(c);
  add_conv(t, "conv2", {z, z, 1, 1, 1});
  add_conv(t, "decoder.conv1", {top, z, 3, 3, 3});
  add_middle(t, "decoder.", top);
  for (const auto& l : wan22_vae_decoder_levels(c))
    add_level(t, "decoder.upsamples." + std::to_string(l.index) + ".upsamples.", l, true);
  t.emplace_back("decoder.head.0.gamma", Shape{c.dec_dim, 1, 1, 1});
  add_conv(t, "decoder.head.2", {12, c.dec_dim, 3, 3, 3});
  return t;
}

bool wan22_vae_layout(const WeightStore& w) {
  return w.has("decoder.upsamples.0.upsamples.0.residual.2.weight") && w.has("conv2.weight");
}

namespace {

[[noreturn]] void not_a_wan22_vae(const std::string& source, const std::string& why) {
  fail(source, " is not a Wan 2.2 VAE: ", why);
}

}  // namespace

Wan22VaeConfig detect_wan22_vae_config(const WeightStore& w, const std::string& source) {
  for (const char* key : {"decoder.conv1.weight", "decoder.head.2.weight", "conv2.weight",
                          "decoder.upsamples.0.upsamples.0.residual.2.weight"})
    if (!w.has(key)) not_a_wan22_vae(source, std::string("it has no tensor ") + key);
  const Shape in = w.shape("decoder.conv1.weight"), head = w.shape("decoder.head.2.weight");
  if (in.size() != 5 || head.size() != 5)
    not_a_wan22_vae(source, "decoder.conv1.weight " + shape_str(in) + " and decoder.head.2.weight " +
                                shape_str(head) + " are not 3-D convolution weights");
  Wan22VaeConfig c;
  c.z_dim = in[1];
  c.dec_dim = head[1];
  if (c.z_dim != 48)
    not_a_wan22_vae(source, "decoder.conv1.weight " + shape_str(in) + " takes " + std::to_string(c.z_dim) +
                                " latent channels, the Wan 2.2 VAE takes 48");
  if (head[0] != 12)
    not_a_wan22_vae(source, "decoder.head.2.weight " + shape_str(head) +
                                " does not make 12 channels (3 colours x 2x2 patch)");
  if (c.dec_dim < 2 || c.dec_dim % 2)
    not_a_wan22_vae(source, "decoder.head.2.weight " + shape_str(head) + " gives an odd decoder width");
  c.has_encoder = w.has("encoder.conv1.weight");
  if (c.has_encoder) {
    const Shape e = w.shape("encoder.conv1.weight");
    if (e.size() != 5 || e[0] < 1)
      not_a_wan22_vae(source, "encoder.conv1.weight " + shape_str(e) + " is not a 3-D convolution weight");
    c.enc_dim = e[0];
  }
  // The parameter-free level shortcuts regroup channels: they need these divisibilities.
  for (const auto& l : wan22_vae_encoder_levels(c))
    if (l.resample && (l.in_dim * (l.temporal ? 8 : 4)) % l.out_dim)
      not_a_wan22_vae(source, "encoder width " + std::to_string(c.enc_dim) + " does not divide into its levels");
  for (const auto& l : wan22_vae_decoder_levels(c))
    if (l.resample && (l.out_dim * (l.temporal ? 8 : 4)) % l.in_dim)
      not_a_wan22_vae(source, "decoder width " + std::to_string(c.dec_dim) + " does not divide into its levels");
  for (const auto& [name, shape] : wan22_vae_expected_tensors(c)) {
    if (!w.has(name)) not_a_wan22_vae(source, "it has no tensor " + name);
    const Shape got = w.shape(name);
    const bool gamma = name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0;
    if (gamma ? shape_numel(got) != shape_numel(shape) : got != shape)
      fail(source, " is not a Wan 2.2 VAE (encoder width ", c.enc_dim, ", decoder width ", c.dec_dim,
           "): tensor ", name, " has shape ", shape_str(got), ", expected ", shape_str(shape));
  }
  return c;
}

}  // namespace raylight
