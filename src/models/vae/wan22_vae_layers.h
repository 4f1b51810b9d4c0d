// The Wan 2.2 VAE's level blocks: a level's residual blocks and resample (the Wan 2.1
// streaming layers, wan_vae_layers.h) plus a parameter-free shortcut around the level,
// added to its output:
//
// - encoder (AvgDown3D): the level input's (time x 2 x 2) neighbourhoods (time only where the
//   level halves time) flattened into channels c * f + (dt, dh, dw) and averaged in
//   consecutive groups down to the output width. Per chunk, as the official code: a chunk
//   with an odd frame count gets one zero frame in front (the clip's first frame alone).
//   Written as a strided conv3d with a constant weight (1/group where a channel feeds a group).
// - decoder (DupUp3D): the inverse layout: input channels repeated, spread over (dt, dh, dw)
//   of the output; the clip's first chunk drops its first ft - 1 frames. Written as a 1x1x1
//   conv with a 0/1 selection weight (its outputs ordered (dt, dh, dw, c)), the time split a
//   reshape of the frame-major clip, and the 2x2 spatial spread the DiT's unpatchify per frame.
//
// The encoder's last level has an identity shortcut; the decoder's last level none.
#pragma once

#include "models/vae/wan_vae_layers.h"

namespace raylight {

class Wan22Level final : public VaeLayer {
 public:
  enum class Shortcut { None, Identity, AvgDown, DupUp };
  Wan22Level(VaeStack main, Shortcut shortcut, int64_t in_dim, int64_t out_dim, bool temporal)
      : main_(std::move(main)), shortcut_(shortcut), in_(in_dim), out_(out_dim), ft_(temporal ? 2 : 1) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  Tensor avg_down(VaeContext& c, const Tensor& x);
  Tensor dup_up(VaeContext& c, const Tensor& x);

  VaeStack main_;
  Shortcut shortcut_;
  int64_t in_, out_, ft_;
  bool started_ = false;
  Tensor weight_;  // the shortcut's constant conv weight, made on first use
};

}  // namespace raylight
