// The streaming layers. Each cache is copied out of its chunk (a few frames) so that
// finished chunk activations are freed at once; see wan_vae_layers.h for the semantics.
#include "models/vae/wan_vae_layers.h"

#include "core/error.h"

namespace raylight {

Tensor clip_frames(const Tensor& x, int64_t begin, int64_t end) {
  const int64_t T = x.dim(0);
  return x.reshape({T, -1}).slice_rows(begin, end).reshape({end - begin, x.dim(1), x.dim(2), x.dim(3)});
}

Tensor concat_clips(Backend& ops, const Tensor& a, const Tensor& b) {
  Tensor rows = ops.concat_rows(a.reshape({a.dim(0), -1}), b.reshape({b.dim(0), -1}));
  return rows.reshape({a.dim(0) + b.dim(0), a.dim(1), a.dim(2), a.dim(3)});
}

Tensor CausalConv3d::forward(VaeContext& c, const Tensor& x) {
  Tensor w = c.weights.get(name_ + ".weight");
  Tensor b = c.weights.get(name_ + ".bias");
  const int64_t keep = w.dim(2) - 1;
  Backend::Conv3dSpec s;
  s.pad_t = static_cast<int>(keep - (past_.defined() ? past_.dim(0) : 0));
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad_;
  Tensor y = c.ops.conv3d(x, past_, w, b, s);
  if (keep > 0) {
    // The cache is copied out so it does not pin the whole chunk's activation.
    Tensor seen = (!past_.defined() || x.dim(0) >= keep) ? x : concat_clips(c.ops, past_, x);
    const int64_t n = seen.dim(0);
    past_ = c.ops.copy(clip_frames(seen, n - std::min(n, keep), n));
  }
  return y;
}

Tensor NormConvHead::forward(VaeContext& c, const Tensor& x) {
  return conv_.forward(c, c.ops.channel_rms_norm(x, c.weights.get(prefix_ + "0.gamma"), true));
}

ResidualBlock::ResidualBlock(const std::string& prefix, int64_t in_dim, int64_t out_dim)
    : prefix_(prefix),
      shortcut_(in_dim != out_dim),
      conv_a_(prefix + "residual.2", 1),
      conv_b_(prefix + "residual.6", 1) {}

Tensor ResidualBlock::forward(VaeContext& c, const Tensor& x) {
  Tensor h = x;
  if (shortcut_)
    h = c.ops.conv3d(x, {}, c.weights.get(prefix_ + "shortcut.weight"),
                     c.weights.get(prefix_ + "shortcut.bias"), {});
  Tensor r = c.ops.channel_rms_norm(x, c.weights.get(prefix_ + "residual.0.gamma"), true);
  r = conv_a_.forward(c, r);
  r = c.ops.channel_rms_norm(r, c.weights.get(prefix_ + "residual.3.gamma"), true);
  r = conv_b_.forward(c, r);
  return c.ops.add(r, h);
}

Tensor AttentionBlock::forward(VaeContext& c, const Tensor& x) {
  const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), L = H * W;
  Tensor n = c.ops.channel_rms_norm(x, c.weights.get(prefix_ + "norm.gamma"), false);
  // to_qkv is a Conv2d [3C, C, 1, 1]: output channels [0,C) are q, [C,2C) k, [2C,3C) v.
  Tensor qkv = c.ops.conv3d(n, {}, c.weights.get(prefix_ + "to_qkv.weight").reshape({3 * C, C, 1, 1, 1}),
                            c.weights.get(prefix_ + "to_qkv.bias"), {});
  Tensor planes = qkv.reshape({T * 3 * C, L});
  Tensor out;
  for (int64_t t = 0; t < T; ++t) {
    // Channel-major [C, L] -> token-major [L, 1 head, C].
    auto tokens = [&](int64_t part) {
      const int64_t r0 = (t * 3 + part) * C;
      return c.ops.swap_leading(planes.slice_rows(r0, r0 + C).reshape({C, L, 1})).reshape({L, 1, C});
    };
    Tensor o = c.ops.attention(tokens(0), tokens(1), tokens(2), -1, nullptr);
    o = c.ops.swap_leading(o.reshape({L, C, 1})).reshape({1, C, H, W});
    out = out.defined() ? concat_clips(c.ops, out, o) : o;
  }
  Tensor y = c.ops.conv3d(out, {}, c.weights.get(prefix_ + "proj.weight").reshape({C, C, 1, 1, 1}),
                          c.weights.get(prefix_ + "proj.bias"), {});
  return c.ops.add(y, x);
}

Tensor Upsampler::double_time(VaeContext& c, const Tensor& x) {
  // time_conv has 2C outputs: channels [0,C) become frame 2t, [C,2C) frame 2t+1, which in
  // the frame-major layout is just a reshape.
  Tensor y = time_conv_.forward(c, x);
  return y.reshape({2 * y.dim(0), y.dim(1) / 2, y.dim(2), y.dim(3)});
}

Tensor Upsampler::forward(VaeContext& c, const Tensor& x) {
  Tensor h = x;
  if (temporal_) {
    if (started_) {
      h = double_time(c, x);
    } else {
      started_ = true;  // the clip's first frame is not upsampled in time
      if (x.dim(0) > 1) h = concat_clips(c.ops, clip_frames(x, 0, 1), double_time(c, clip_frames(x, 1, x.dim(0))));
    }
  }
  Tensor w = c.weights.get(prefix_ + "resample.1.weight");
  Backend::Conv3dSpec s;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = 1;
  return c.ops.conv3d(c.ops.upsample_nearest2x(h), {}, w.reshape({w.dim(0), w.dim(1), 1, w.dim(2), w.dim(3)}),
                      c.weights.get(prefix_ + "resample.1.bias"), s);
}

Tensor Downsampler::forward(VaeContext& c, const Tensor& x) {
  Tensor w = c.weights.get(prefix_ + "resample.1.weight");
  Backend::Conv3dSpec s;
  s.stride_h = s.stride_w = 2;
  s.pad_bottom = s.pad_right = 1;  // ZeroPad2d((0, 1, 0, 1))
  Tensor h = c.ops.conv3d(x, {}, w.reshape({w.dim(0), w.dim(1), 1, w.dim(2), w.dim(3)}),
                          c.weights.get(prefix_ + "resample.1.bias"), s);
  if (!temporal_) return h;
  const int64_t T = h.dim(0);
  Backend::Conv3dSpec ts;
  ts.stride_t = 2;
  Tensor tw = c.weights.get(prefix_ + "time_conv.weight"), tb = c.weights.get(prefix_ + "time_conv.bias");
  Tensor out;
  if (!started_) {
    // Output 0 is frame 0; output j >= 1 convolves frames 2j-2, 2j-1, 2j.
    if (T % 2 == 0) fail("VAE encoder: the first chunk must have an odd number of frames, got ", T);
    started_ = true;
    out = clip_frames(h, 0, 1);
    if (T > 1) out = concat_clips(c.ops, out, c.ops.conv3d(h, {}, tw, tb, ts));
  } else {
    if (T % 2) fail("VAE encoder: chunks after the first must have an even number of frames, got ", T);
    out = c.ops.conv3d(h, last_, tw, tb, ts);
  }
  last_ = c.ops.copy(clip_frames(h, T - 1, T));
  return out;
}

}  // namespace raylight
