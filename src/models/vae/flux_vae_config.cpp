// The implied tensor list and detection. The list is the single source of the architecture:
// the check, the tiny weights and the network all walk the same levels and blocks.
#include "models/vae/flux_vae_config.h"

#include "core/error.h"
#include "parallel/weight_store.h"

namespace raylight {
namespace {

using TensorList = std::vector<std::pair<std::string, Shape>>;

void add_conv(TensorList& t, const std::string& name, Shape w) {
  const int64_t out = w[0];
  t.emplace_back(name + ".weight", std::move(w));
  t.emplace_back(name + ".bias", Shape{out});
}

void add_norm(TensorList& t, const std::string& name, int64_t c) {
  t.emplace_back(name + ".weight", Shape{c});
  t.emplace_back(name + ".bias", Shape{c});
}

void add_resnet(TensorList& t, const std::string& p, int64_t in, int64_t out) {
  add_norm(t, p + "norm1", in);
  add_conv(t, p + "conv1", {out, in, 3, 3});
  add_norm(t, p + "norm2", out);
  add_conv(t, p + "conv2", {out, out, 3, 3});
  if (in != out) add_conv(t, p + "nin_shortcut", {out, in, 1, 1});
}

void add_mid(TensorList& t, const std::string& p, int64_t c) {
  add_resnet(t, p + "mid.block_1.", c, c);
  add_norm(t, p + "mid.attn_1.norm", c);
  for (const char* m : {"q", "k", "v", "proj_out"}) add_conv(t, p + "mid.attn_1." + m, {c, c, 1, 1});
  add_resnet(t, p + "mid.block_2.", c, c);
}

[[noreturn]] void not_a_flux_vae(const WeightStore& w, const std::string& source, const std::string& missing) {
  std::string hint;
  if (w.has("decoder.conv1.weight") && w.has("conv2.weight"))
    hint = " (it has decoder.conv1.weight and conv2.weight: the layout of the Wan 2.1 video VAE)";
  else if (w.has("decoder.up_blocks.0.resnets.0.conv1.weight"))
    hint = " (it has decoder.up_blocks.*: diffusers' AutoencoderKL layout; convert it to the official "
           "names, as ComfyUI's ae.safetensors has them)";
  fail(source, " is not a Flux VAE: it has no tensor ", missing, hint);
}

// How many of `prefix`N`suffix` exist for N = 0, 1, ... (stops at the first gap; at most 16).
int count_numbered(const WeightStore& w, const std::string& prefix, const std::string& suffix) {
  int n = 0;
  while (n < 16 && w.has(prefix + std::to_string(n) + suffix)) ++n;
  return n;
}

}  // namespace

TensorList flux_vae_expected_tensors(const FluxVaeConfig& c) {
  TensorList t;
  const size_t levels = c.ch_mult.size();
  const int64_t top = c.top_dim(), z = c.z_channels;
  if (c.has_encoder) {
    add_conv(t, "encoder.conv_in", {c.ch, 3, 3, 3});
    int64_t in = c.ch;
    for (size_t i = 0; i < levels; ++i) {
      const int64_t out = c.ch * c.ch_mult[i];
      const std::string p = "encoder.down." + std::to_string(i) + ".";
      for (int j = 0; j < c.num_res_blocks; ++j, in = out) add_resnet(t, p + "block." + std::to_string(j) + ".", in, out);
      if (i + 1 != levels) add_conv(t, p + "downsample.conv", {in, in, 3, 3});
    }
    add_mid(t, "encoder.", top);
    add_norm(t, "encoder.norm_out", top);
    add_conv(t, "encoder.conv_out", {2 * z, top, 3, 3});
  }
  add_conv(t, "decoder.conv_in", {top, z, 3, 3});
  add_mid(t, "decoder.", top);
  int64_t in = top;
  for (size_t k = levels; k-- > 0;) {
    const int64_t out = c.ch * c.ch_mult[k];
    const std::string p = "decoder.up." + std::to_string(k) + ".";
    for (int j = 0; j < c.num_res_blocks + 1; ++j, in = out) add_resnet(t, p + "block." + std::to_string(j) + ".", in, out);
    if (k != 0) add_conv(t, p + "upsample.conv", {in, in, 3, 3});
  }
  add_norm(t, "decoder.norm_out", in);
  add_conv(t, "decoder.conv_out", {3, in, 3, 3});
  return t;
}

FluxVaeConfig detect_flux_vae_config(const WeightStore& w, const std::string& source) {
  for (const char* key : {"decoder.conv_in.weight", "decoder.conv_out.weight", "decoder.up.0.block.0.conv1.weight"})
    if (!w.has(key)) not_a_flux_vae(w, source, key);
  FluxVaeConfig c;
  const Shape in = w.shape("decoder.conv_in.weight"), out = w.shape("decoder.conv_out.weight");
  if (in.size() != 4 || out.size() != 4)
    fail(source, " is not a Flux VAE: decoder.conv_in.weight ", shape_str(in), " and decoder.conv_out.weight ",
         shape_str(out), " are not 2-D convolution weights");
  c.z_channels = in[1];
  c.ch = out[1];
  const int levels = count_numbered(w, "decoder.up.", ".block.0.conv1.weight");
  const int blocks = count_numbered(w, "decoder.up.0.block.", ".conv1.weight");
  if (levels < 1 || levels > 8 || blocks < 2)
    fail(source, " is not a Flux VAE: it has ", levels, " decoder levels with ", blocks,
         " blocks in the first (expected up to 8 levels of at least 2 blocks)");
  c.num_res_blocks = blocks - 1;
  c.ch_mult.clear();
  for (int i = 0; i < levels; ++i) {
    const std::string name = "decoder.up." + std::to_string(i) + ".block.0.conv2.weight";
    if (!w.has(name)) not_a_flux_vae(w, source, name);
    const Shape s = w.shape(name);
    if (c.ch < 1 || s.empty() || s[0] % c.ch)
      fail(source, " is not a Flux VAE: ", name, " has shape ", shape_str(s), ", not a multiple of the base width ",
           c.ch, " (decoder.conv_out.weight ", shape_str(out), ")");
    c.ch_mult.push_back(s[0] / c.ch);
  }
  for (int64_t m : c.ch_mult)
    if ((c.ch * m) % 32)
      fail(source, " is not a Flux VAE: its widths (base ", c.ch, ") are not multiples of GroupNorm's 32 groups");
  c.has_encoder = w.has("encoder.conv_in.weight");
  for (const auto& [name, shape] : flux_vae_expected_tensors(c)) {
    if (!w.has(name)) not_a_flux_vae(w, source, name);
    const Shape got = w.shape(name);
    if (got != shape)
      fail(source, " is not a Flux VAE (base width ", c.ch, ", ", c.z_channels, " latent channels): tensor ", name,
           " has shape ", shape_str(got), ", expected ", shape_str(shape));
  }
  return c;
}

}  // namespace raylight
