// Per-pixel channel ops of the video VAE on frame-major clips [T, C, H, W]: the RMS norm
// over channels (Wan's RMS_norm: F.normalize over C, times sqrt(C) * gamma, optionally
// fused with the SiLU that always follows it in residual blocks and heads) and 2x nearest
// upsampling. Channels of a pixel are H*W apart, so the norm walks channel planes
// and accumulates squares per pixel in double (the reference values GPU kernels are
// compared with); pixels are split across the worker pool in contiguous runs.
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

Tensor channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  const int64_t T = x.dim(0), C = x.dim(1), S = x.dim(2) * x.dim(3);
  Tensor y = Tensor::empty(x.shape());
  const float* xp = x.f32();
  const float* gp = gamma.f32();
  float* yp = y.f32();
  const double root_c = std::sqrt(static_cast<double>(C));
  constexpr int64_t kRun = 256;  // pixels per work item
  const int64_t runs = (S + kRun - 1) / kRun;
  parallel_for(T * runs, 1, [&](int64_t r0, int64_t r1) {
    std::vector<double> scale(kRun);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r / runs, s0 = (r % runs) * kRun, n = std::min(kRun, S - s0);
      const float* xt = xp + t * C * S + s0;
      float* yt = yp + t * C * S + s0;
      std::fill(scale.begin(), scale.begin() + n, 0.0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < n; ++i) scale[i] += static_cast<double>(xt[c * S + i]) * xt[c * S + i];
      for (int64_t i = 0; i < n; ++i) scale[i] = root_c / std::max(std::sqrt(scale[i]), 1e-12);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < n; ++i) {
          double v = xt[c * S + i] * scale[i] * gp[c];
          if (silu) v = v / (1.0 + std::exp(-v));
          yt[c * S + i] = static_cast<float>(v);
        }
    }
  });
  return y;
}

Tensor upsample_nearest2x(const Tensor& x) {
  const int64_t planes = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  Tensor y = Tensor::empty({x.dim(0), x.dim(1), 2 * H, 2 * W});
  const float* xp = x.f32();
  float* yp = y.f32();
  parallel_for(planes * H, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* src = xp + r * W;
      float* dst = yp + r * 4 * W;  // output rows 2h and 2h + 1 of the same plane
      for (int64_t w = 0; w < W; ++w) dst[2 * w] = dst[2 * w + 1] = src[w];
      std::copy(dst, dst + 2 * W, dst + 2 * W);
    }
  });
  return y;
}

}  // namespace raylight::cpu
