// The Wan 2.1 VAE's layers as streaming modules: each takes the next chunk of frames of a
// frame-major clip [T, C, H, W] (on the backend) and returns the matching chunk of its
// output, keeping whatever it needs from earlier chunks. This is the official code's
// feat_cache, held by the layer that uses it instead of in a list indexed by call order:
//
// - a causal conv keeps the last (kt - 1) frames of its *input* (zeros before the first
//   chunk), so chunk by chunk it computes exactly the conv of the whole clip padded with
//   kt - 1 zero frames in front;
// - the decoder's temporal upsampler passes the clip's first frame through untouched (the
//   official 'Rep' marker) and runs its time_conv on the frames after it, with zero history;
// - the encoder's temporal downsampler passes the first frame through, then for each later
//   pair of frames convolves (previous frame, pair) with stride 2.
//
// Layers never touch memory layouts: all work is Backend ops on weights fetched by name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "parallel/weight_store.h"

namespace raylight {

struct VaeContext {
  Backend& ops;
  WeightStore& weights;
};

// Frames [begin, end) of a frame-major clip, sharing its bytes.
Tensor clip_frames(const Tensor& x, int64_t begin, int64_t end);
// Frames of a, then frames of b (same C, H, W).
Tensor concat_clips(Backend& ops, const Tensor& a, const Tensor& b);

class VaeLayer {
 public:
  virtual ~VaeLayer() = default;
  virtual Tensor forward(VaeContext& c, const Tensor& x) = 0;
};

// CausalConv3d: `name`.weight [Cout, Cin, kt, kh, kw] with spatial padding `pad` on every side.
class CausalConv3d final : public VaeLayer {
 public:
  CausalConv3d(std::string name, int pad) : name_(std::move(name)), pad_(pad) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  std::string name_;
  int pad_;
  Tensor past_;  // last kt - 1 input frames seen
};

// RMS_norm + SiLU + CausalConv3d: the output heads (`prefix`.0 is the norm, .2 the conv).
class NormConvHead final : public VaeLayer {
 public:
  explicit NormConvHead(const std::string& prefix) : prefix_(prefix), conv_(prefix + "2", 1) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  std::string prefix_;
  CausalConv3d conv_;
};

// x + residual(x) with residual = (norm, SiLU, conv 3x3x3) twice; a 1x1x1 shortcut conv
// when the channel count changes. Dropout (index 5) is the identity at inference.
class ResidualBlock final : public VaeLayer {
 public:
  ResidualBlock(const std::string& prefix, int64_t in_dim, int64_t out_dim);
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  std::string prefix_;
  bool shortcut_;
  CausalConv3d conv_a_, conv_b_;
};

// Single-head self-attention over the H*W pixels of each frame separately (1x1 convs make
// q, k, v and the projection), added to its input. Stateless.
class AttentionBlock final : public VaeLayer {
 public:
  explicit AttentionBlock(std::string prefix) : prefix_(std::move(prefix)) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  std::string prefix_;
};

// Decoder Resample: [time_conv doubling time,] nearest 2x upsampling, 3x3 conv halving C.
class Upsampler final : public VaeLayer {
 public:
  Upsampler(const std::string& prefix, bool temporal)
      : prefix_(prefix), temporal_(temporal), time_conv_(prefix + "time_conv", 0) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  Tensor double_time(VaeContext& c, const Tensor& x);
  std::string prefix_;
  bool temporal_;
  bool started_ = false;
  CausalConv3d time_conv_;
};

// Encoder Resample: zero pad right/bottom + 3x3 stride-2 conv[, time_conv halving time].
class Downsampler final : public VaeLayer {
 public:
  Downsampler(std::string prefix, bool temporal) : prefix_(std::move(prefix)), temporal_(temporal) {}
  Tensor forward(VaeContext& c, const Tensor& x) override;

 private:
  std::string prefix_;
  bool temporal_;
  bool started_ = false;
  Tensor last_;  // last frame seen by time_conv
};

// Layers applied in order; a fresh stack is a fresh stream (no cached frames).
class VaeStack {
 public:
  template <typename L, typename... Args>
  void add(Args&&... args) {
    layers_.push_back(std::make_unique<L>(std::forward<Args>(args)...));
  }
  Tensor forward(VaeContext& c, Tensor x) {
    for (auto& l : layers_) x = l->forward(c, x);
    return x;
  }
  // other's layers after this one's (other is left empty).
  void append(VaeStack&& other) {
    for (auto& l : other.layers_) layers_.push_back(std::move(l));
    other.layers_.clear();
  }

 private:
  std::vector<std::unique_ptr<VaeLayer>> layers_;
};

}  // namespace raylight
