// The CPU emulation of fp8 attention (backend/fp8_attention.h): the operands quantised the
// way the CUDA path quantises them (q and k rotated per head, K and V smoothed, one e4m3
// scale per tensor, P * 448 as e4m3), the rest exact in double. It is the reference the CUDA fp8 path is held to, and the
// measure of what fp8 costs in accuracy against exact attention.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/fp8_rotation.h"
#include "core/dtype.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
namespace {

constexpr float kE4m3Max = 448.0f;

float e4m3(float x) { return e4m3_to_f32(f32_to_e4m3(x)); }

// backend/fp8_rotation.h's H S x / sqrt(D) on every head of x [rows, H, D].
std::vector<float> rotated(const Tensor& x) {
  const int64_t D = x.dim(2);
  std::vector<float> y(x.f32(), x.f32() + x.numel());
  for (int64_t h0 = 0; h0 < x.numel(); h0 += D) fp8_rotate_head(y.data() + h0, D);
  return y;
}

// x [rows, C] (rotated per head first when rotate) - mean (when smooth: the fp32 mean over
// rows [0, n) of each column), quantised with one scale from rows [0, n) and dequantised
// again: the values the fp8 product sees.
std::vector<float> quantised(const Tensor& x, int64_t n, bool smooth, bool rotate, float* scale_out = nullptr,
                             std::vector<float>* mean_out = nullptr) {
  const int64_t rows = x.dim(0), C = x.numel() / std::max<int64_t>(rows, 1);
  const std::vector<float> turned = rotate ? rotated(x) : std::vector<float>();
  const float* p = rotate ? turned.data() : x.f32();
  std::vector<float> mean(C, 0.0f);
  if (smooth && n > 0) {
    std::vector<double> sum(C, 0.0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < C; ++c) sum[c] += p[r * C + c];
    for (int64_t c = 0; c < C; ++c) mean[c] = static_cast<float>(sum[c] / double(n));
  }
  float amax = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const float y = p[r * C + c] - mean[c];
      amax = std::isfinite(y) ? std::max(amax, std::fabs(y)) : std::numeric_limits<float>::infinity();
    }
  const float scale = (amax > 0 && std::isfinite(amax)) ? kE4m3Max / amax : 1.0f;
  if (scale_out) *scale_out = scale;
  if (mean_out) *mean_out = mean;
  std::vector<float> out(static_cast<size_t>(rows * C));
  for (int64_t i = 0; i < rows * C; ++i) out[i] = e4m3((p[i] - mean[i % C]) * scale) / scale;
  return out;
}

}  // namespace

Tensor attention_fp8(const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid, Tensor* lse) {
  const int64_t Lq = q.dim(0), H = q.dim(1), D = q.dim(2);
  float v_scale = 1;
  std::vector<float> v_mean;
  // q and k rotated alike (q . k unchanged, outlier channels spread), v as it is.
  const bool rotate = fp8_rotates(D);
  const std::vector<float> q8 = quantised(q, Lq, false, rotate), k8 = quantised(k, valid, true, rotate),
                           v8 = quantised(v, valid, true, false, &v_scale, &v_mean);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor out = Tensor::empty({Lq, H, D});
  if (lse) *lse = Tensor::empty({H, Lq});
  float* op = out.f32();
  float* lp = lse ? lse->f32() : nullptr;
  parallel_for(H * Lq, 8, [&](int64_t r0, int64_t r1) {
    std::vector<double> scores(valid), acc(D);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r / Lq, i = r % Lq;
      const float* qr = q8.data() + (i * H + h) * D;
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < valid; ++j) {
        const float* kr = k8.data() + (j * H + h) * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(qr[d]) * kr[d];
        scores[j] = s * scale;
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < valid; ++j) sum += std::exp(scores[j] - mx);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < valid; ++j) {
        // The flash kernel quantises exp(s - max) (in (0, 1]) before dividing by the row sum.
        const double p8 = e4m3(static_cast<float>(std::exp(scores[j] - mx) * kE4m3Max)) / double(kE4m3Max) / sum;
        const float* vr = v8.data() + (j * H + h) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += p8 * vr[d];
      }
      float* orow = op + (i * H + h) * D;
      // The output as e4m3 codes scaled like v (|o| <= max |v|): on Hopper cuDNN's fp8
      // attention has no bf16 output.
      // v's mean comes back after (rows of P sum to 1).
      for (int64_t d = 0; d < D; ++d)
        orow[d] = e4m3(static_cast<float>(acc[d]) * v_scale) / v_scale + v_mean[h * D + d];
      if (lp) lp[h * Lq + i] = static_cast<float>(mx + std::log(sum));
    }
  });
  return out;
}

}  // namespace raylight::cpu
