// Stage lists, the implied tensor list, and detection. The stage lists are the single
// source of the architecture: the expected-tensor check, the tiny weights and the layer
// stacks are all built from them, so names and shapes cannot drift apart.
#include "models/vae/wan_vae_config.h"

#include "core/error.h"
#include "models/vae/wan_vae_tensor_list.h"
#include "parallel/weight_store.h"

namespace raylight {

const float kWanVaeLatentMean[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                     -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                     -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
const float kWanVaeLatentStd[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f,
                                    2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f,
                                    1.6382f, 1.1253f, 2.8251f, 1.9160f};

std::vector<WanVaeStage> wan_vae_encoder_stages(const WanVaeConfig& c) {
  std::vector<WanVaeStage> out;
  int k = 0;
  int64_t in = c.base_dim;
  const size_t levels = c.dim_mult.size();
  for (size_t i = 0; i < levels; ++i) {
    const int64_t dim = c.base_dim * c.dim_mult[i];
    for (int r = 0; r < c.num_res_blocks; ++r, in = dim)
      out.push_back({WanVaeStage::Kind::Residual, k++, in, dim, false});
    if (i + 1 != levels)
      out.push_back({WanVaeStage::Kind::Resample, k++, dim, dim, c.temporal_downsample[i]});
  }
  return out;
}

std::vector<WanVaeStage> wan_vae_decoder_stages(const WanVaeConfig& c) {
  std::vector<WanVaeStage> out;
  int k = 0;
  const size_t levels = c.dim_mult.size();
  int64_t in = c.base_dim * c.dim_mult.back();
  for (size_t i = 0; i < levels; ++i) {
    const int64_t dim = c.base_dim * c.dim_mult[levels - 1 - i];
    for (int r = 0; r < c.num_res_blocks + 1; ++r, in = dim)
      out.push_back({WanVaeStage::Kind::Residual, k++, in, dim, false});
    if (i + 1 != levels) {
      // The upsampler's spatial conv halves the channels for the next level.
      out.push_back({WanVaeStage::Kind::Resample, k++, dim, dim / 2,
                     static_cast<bool>(c.temporal_downsample[levels - 2 - i])});
      in = dim / 2;
    }
  }
  return out;
}

int64_t wan_vae_middle_dim(const WanVaeConfig& c) { return c.base_dim * c.dim_mult.back(); }

using namespace wan_vae_tensors;

TensorList wan_vae_expected_tensors(const WanVaeConfig& c) {
  TensorList t;
  const int64_t mid = wan_vae_middle_dim(c), z = c.z_dim;
  if (c.has_encoder) {
    add_conv(t, "encoder.conv1", {c.base_dim, 3, 3, 3, 3});
    for (const auto& s : wan_vae_encoder_stages(c)) {
      const std::string p = "encoder.downsamples." + std::to_string(s.index) + ".";
      if (s.kind == WanVaeStage::Kind::Residual) {
        add_residual(t, p, s.in_dim, s.out_dim);
      } else {
        add_conv(t, p + "resample.1", {s.out_dim, s.in_dim, 3, 3});
        if (s.temporal) add_conv(t, p + "time_conv", {s.in_dim, s.in_dim, 3, 1, 1});
      }
    }
    add_middle(t, "encoder.", mid);
    t.emplace_back("encoder.head.0.gamma", Shape{mid, 1, 1, 1});
    add_conv(t, "encoder.head.2", {2 * z, mid, 3, 3, 3});
    add_conv(t, "conv1", {2 * z, 2 * z, 1, 1, 1});
  }
  add_conv(t, "conv2", {z, z, 1, 1, 1});
  add_conv(t, "decoder.conv1", {mid, z, 3, 3, 3});
  add_middle(t, "decoder.", mid);
  for (const auto& s : wan_vae_decoder_stages(c)) {
    const std::string p = "decoder.upsamples." + std::to_string(s.index) + ".";
    if (s.kind == WanVaeStage::Kind::Residual) {
      add_residual(t, p, s.in_dim, s.out_dim);
    } else {
      add_conv(t, p + "resample.1", {s.out_dim, s.in_dim, 3, 3});
      if (s.temporal) add_conv(t, p + "time_conv", {2 * s.in_dim, s.in_dim, 3, 1, 1});
    }
  }
  const int64_t top = c.base_dim * c.dim_mult.front();
  t.emplace_back("decoder.head.0.gamma", Shape{top, 1, 1, 1});
  add_conv(t, "decoder.head.2", {3, top, 3, 3, 3});
  return t;
}

namespace {

[[noreturn]] void not_a_wan_vae(const WeightStore& w, const std::string& source, const std::string& missing) {
  std::string hint;
  if (w.has("decoder.conv_in.weight") || w.has("encoder.conv_in.weight"))
    hint = " (it has decoder.conv_in.weight / encoder.down.*: the layout of 2-D image "
           "autoencoders such as Flux's or Stable Diffusion's ae.safetensors)";
  else if (w.has("patch_embedding.weight"))
    hint = " (it has patch_embedding.weight: this is a Wan DiT checkpoint, not its VAE)";
  fail(source, " is not a Wan 2.1 VAE: it has no tensor ", missing, hint);
}

}  // namespace

WanVaeConfig detect_wan_vae_config(const WeightStore& w, const std::string& source) {
  for (const char* key : {"decoder.conv1.weight", "decoder.head.2.weight", "conv2.weight"})
    if (!w.has(key)) not_a_wan_vae(w, source, key);
  WanVaeConfig c;
  const Shape in = w.shape("decoder.conv1.weight"), head = w.shape("decoder.head.2.weight");
  if (in.size() != 5 || head.size() != 5)
    fail(source, " is not a Wan 2.1 VAE: decoder.conv1.weight ", shape_str(in), " and decoder.head.2.weight ",
         shape_str(head), " are not 3-D convolution weights");
  c.z_dim = in[1];
  c.base_dim = head[1];
  if (c.z_dim != 16)
    fail(source, " is not a Wan 2.1 VAE: decoder.conv1.weight ", shape_str(in), " takes ", c.z_dim,
         " latent channels, the Wan 2.1 VAE takes 16 (Wan 2.2's 48-channel VAE is a different model)");
  if (c.base_dim < 2 || c.base_dim % 2)
    fail(source, " is not a Wan 2.1 VAE: decoder.head.2.weight ", shape_str(head),
         " gives an odd base width ", c.base_dim);
  c.has_encoder = w.has("encoder.conv1.weight");
  for (const auto& [name, shape] : wan_vae_expected_tensors(c)) {
    if (!w.has(name)) not_a_wan_vae(w, source, name);
    const Shape got = w.shape(name);
    // Norm gammas are broadcast shapes ([C,1,1,1]); converters sometimes flatten them.
    const bool gamma = name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0;
    if (gamma ? shape_numel(got) != shape_numel(shape) : got != shape)
      fail(source, " is not a Wan 2.1 VAE (base width ", c.base_dim, ", ", c.z_dim,
           " latent channels): tensor ", name, " has shape ", shape_str(got), ", expected ",
           shape_str(shape));
  }
  return c;
}

}  // namespace raylight
