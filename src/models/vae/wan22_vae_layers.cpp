#include "models/vae/wan22_vae_layers.h"

#include "core/error.h"

namespace raylight {

Tensor Wan22Level::forward(VaeContext& c, const Tensor& x) {
  Tensor y = main_.forward(c, x);
  Tensor s;
  switch (shortcut_) {
    case Shortcut::None: break;
    case Shortcut::Identity: s = x; break;
    case Shortcut::AvgDown: s = avg_down(c, x); break;
    case Shortcut::DupUp: s = dup_up(c, x); break;
  }
  started_ = true;
  if (!s.defined()) return y;
  if (s.shape() != y.shape())
    fail("VAE: internal error, level shortcut ", shape_str(s.shape()), " against ", shape_str(y.shape()));
  return c.ops.add(y, s);
}

Tensor Wan22Level::avg_down(VaeContext& c, const Tensor& x) {
  const int64_t factor = ft_ * 4, group = in_ * factor / out_;
  if (!weight_.defined()) {
    // Channel c's (dt, dh, dw) sample is flat index c * factor + dt * 4 + dh * 2 + dw,
    // averaged into output index / group.
    Tensor w = Tensor::zeros({out_, in_, ft_, 2, 2});
    for (int64_t ci = 0; ci < in_; ++ci)
      for (int64_t k = 0; k < factor; ++k) w.f32()[((ci * factor + k) / group * in_ + ci) * factor + k] = 1.0f / group;
    weight_ = c.ops.weight(w, 1.0f);
  }
  Backend::Conv3dSpec s;
  s.stride_t = static_cast<int>(ft_);
  s.stride_h = s.stride_w = 2;
  s.pad_t = static_cast<int>((ft_ - x.dim(0) % ft_) % ft_);
  return c.ops.conv3d(x, {}, weight_, {}, s);
}

Tensor Wan22Level::dup_up(VaeContext& c, const Tensor& x) {
  const int64_t factor = ft_ * 4, repeats = out_ * factor / in_;
  if (!weight_.defined()) {
    // Output row (dt, dh, dw, o) reads input channel (o * factor + dt * 4 + dh * 2 + dw) / repeats.
    Tensor w = Tensor::zeros({factor * out_, in_, 1, 1, 1});
    for (int64_t k = 0; k < factor; ++k)
      for (int64_t o = 0; o < out_; ++o) w.f32()[(k * out_ + o) * in_ + (o * factor + k) / repeats] = 1.0f;
    weight_ = c.ops.weight(w, 1.0f);
  }
  const int64_t T = x.dim(0), H = x.dim(2), W = x.dim(3);
  Tensor sel = c.ops.conv3d(x, {}, weight_, {}, {}).reshape({T * ft_, 4 * out_, H * W, 1});
  const int64_t first = started_ ? 0 : ft_ - 1;  // the clip's first chunk drops ft - 1 frames
  Tensor out;
  for (int64_t f = first; f < T * ft_; ++f) {
    Tensor plane = sel.reshape({T * ft_, 4 * out_ * H * W}).slice_rows(f, f + 1).reshape({4 * out_, H * W, 1});
    Tensor tokens = c.ops.swap_leading(plane).reshape({H * W, 4 * out_});
    Tensor frame = c.ops.unpatchify(tokens, 1, H, W, out_, PatchSize{1, 2, 2}).reshape({1, out_, 2 * H, 2 * W});
    out = out.defined() ? concat_clips(c.ops, out, frame) : frame;
  }
  return out;
}

}  // namespace raylight
