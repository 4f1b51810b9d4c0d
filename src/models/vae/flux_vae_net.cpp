// The official autoencoder's modules (flux/modules/autoencoder.py) as functions: ResnetBlock,
// AttnBlock, Downsample (zero pad right and bottom, 3x3 stride-2 conv), Upsample (nearest
// 2x, 3x3 conv), walked over the levels of the config in module order.
#include "models/vae/flux_vae_net.h"

#include <string>

namespace raylight {
namespace {

struct Net {
  Backend& ops;
  WeightStore& w;

  Tensor conv(const Tensor& x, const std::string& name, int pad) {
    VaeOps::Conv2dSpec s;
    s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
    return ops.conv2d(x, w.get(name + ".weight"), w.get(name + ".bias"), s);
  }
  // GroupNorm(32 groups, eps 1e-6, affine), then SiLU (swish) when asked.
  Tensor norm(const Tensor& x, const std::string& name, bool silu) {
    VaeOps::GroupNormSpec s;
    s.groups = 32;
    s.eps = 1e-6f;
    s.silu = silu;
    return ops.group_norm(x, w.get(name + ".weight"), w.get(name + ".bias"), s);
  }

  Tensor resnet(const Tensor& x, const std::string& p) {
    Tensor h = conv(norm(x, p + "norm1", true), p + "conv1", 1);
    h = conv(norm(h, p + "norm2", true), p + "conv2", 1);  // dropout: the identity at inference
    const Tensor skip = w.has(p + "nin_shortcut.weight") ? conv(x, p + "nin_shortcut", 0) : x;
    return ops.add(skip, h);
  }

  // Single-head attention over the H*W pixels of each image, channels as the head's width.
  Tensor attention(const Tensor& x, const std::string& p) {
    const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), L = H * W;
    const Tensor n = norm(x, p + "norm", false);
    const Tensor q = conv(n, p + "q", 0), k = conv(n, p + "k", 0), v = conv(n, p + "v", 0);
    // Image i, channel-major [C, L] -> token-major [L, 1 head, C].
    auto tokens = [&](const Tensor& t, int64_t i) {
      return ops.swap_leading(t.reshape({N * C, L}).slice_rows(i * C, (i + 1) * C).reshape({C, L, 1}))
          .reshape({L, 1, C});
    };
    Tensor out;
    for (int64_t i = 0; i < N; ++i) {
      Tensor o = ops.attention(tokens(q, i), tokens(k, i), tokens(v, i), -1, nullptr);
      o = ops.swap_leading(o.reshape({L, C, 1})).reshape({1, C * H * W});
      out = out.defined() ? ops.concat_rows(out, o) : o;
    }
    return ops.add(x, conv(out.reshape({N, C, H, W}), p + "proj_out", 0));
  }

  Tensor mid(Tensor x, const std::string& p) {
    x = resnet(x, p + "mid.block_1.");
    x = attention(x, p + "mid.attn_1.");
    return resnet(x, p + "mid.block_2.");
  }
};

}  // namespace

Tensor flux_vae_encoder(Backend& ops, WeightStore& weights, const FluxVaeConfig& c, const Tensor& x) {
  Net n{ops, weights};
  Tensor h = n.conv(x, "encoder.conv_in", 1);
  const size_t levels = c.ch_mult.size();
  for (size_t i = 0; i < levels; ++i) {
    const std::string p = "encoder.down." + std::to_string(i) + ".";
    for (int j = 0; j < c.num_res_blocks; ++j) h = n.resnet(h, p + "block." + std::to_string(j) + ".");
    if (i + 1 != levels) {
      VaeOps::Conv2dSpec s;  // the official pad (0, 1, 0, 1): one zero column right, one row below
      s.stride_h = s.stride_w = 2;
      s.pad_bottom = s.pad_right = 1;
      h = ops.conv2d(h, weights.get(p + "downsample.conv.weight"), weights.get(p + "downsample.conv.bias"), s);
    }
  }
  h = n.mid(h, "encoder.");
  return n.conv(n.norm(h, "encoder.norm_out", true), "encoder.conv_out", 1);
}

Tensor flux_vae_decoder(Backend& ops, WeightStore& weights, const FluxVaeConfig& c, const Tensor& z) {
  Net n{ops, weights};
  Tensor h = n.mid(n.conv(z, "decoder.conv_in", 1), "decoder.");
  for (size_t k = c.ch_mult.size(); k-- > 0;) {
    const std::string p = "decoder.up." + std::to_string(k) + ".";
    for (int j = 0; j < c.num_res_blocks + 1; ++j) h = n.resnet(h, p + "block." + std::to_string(j) + ".");
    if (k != 0) h = n.conv(ops.upsample_nearest2x(h), p + "upsample.conv", 1);
  }
  return n.conv(n.norm(h, "decoder.norm_out", true), "decoder.conv_out", 1);
}

}  // namespace raylight
