// GroupNorm over frame-major clips [T, C, H, W] (PyTorch's nn.GroupNorm; for images T is
// the batch). A group's statistics cover its C/groups channel planes of one frame, or of
// every frame (over_frames, HunyuanVideo's VAE). Mean and biased variance are two exact
// passes in double, as the reference for the GPU kernels should be; then one pass applies
// the affine and the optional SiLU. (sample, group) pairs are split across the worker pool.
#include <cmath>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

Tensor group_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, const Backend::GroupNormSpec& spec) {
  const int64_t T = x.dim(0), C = x.dim(1), S = x.dim(2) * x.dim(3), G = spec.groups, cg = C / G;
  const int64_t samples = spec.over_frames ? 1 : T, frames = spec.over_frames ? T : 1;
  const int64_t n = frames * cg * S;  // elements per (sample, group)
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  const float* wp = weight.defined() ? weight.f32() : nullptr;
  const float* bp = bias.defined() ? bias.f32() : nullptr;
  float* yp = y.f32();
  parallel_for(samples * G, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t s = r / G, g = r % G;
      // The group's channel planes of frame f start at this offset; cg * S values each.
      auto run = [&](int64_t f) { return ((s * frames + f) * C + g * cg) * S; };
      double mean = 0;
      for (int64_t f = 0; f < frames; ++f)
        for (int64_t i = 0; i < cg * S; ++i) mean += xp[run(f) + i];
      mean /= static_cast<double>(n);
      double var = 0;
      for (int64_t f = 0; f < frames; ++f)
        for (int64_t i = 0; i < cg * S; ++i) {
          const double d = xp[run(f) + i] - mean;
          var += d * d;
        }
      var /= static_cast<double>(n);
      const double inv = 1.0 / std::sqrt(var + spec.eps);
      for (int64_t f = 0; f < frames; ++f)
        for (int64_t c = 0; c < cg; ++c) {
          const int64_t ch = g * cg + c;
          const double w = wp ? wp[ch] : 1.0, b = bp ? bp[ch] : 0.0;
          const int64_t base = run(f) + c * S;
          for (int64_t i = 0; i < S; ++i) {
            double v = (xp[base + i] - mean) * inv * w + b;
            if (spec.silu) v = v / (1.0 + std::exp(-v));
            yp[base + i] = static_cast<float>(v);
          }
        }
    }
  });
  return y;
}

}  // namespace raylight::cpu
