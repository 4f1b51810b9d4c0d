// Reference biased attention: one (head, query) row at a time, dot products and softmax in
// double like the CPU backend's attention, rows split over the worker pool.
#include "models/t5/umt5_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel_for.h"

namespace raylight {

int64_t umt5_relative_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance) {
  const int64_t half = num_buckets / 2;
  const int64_t exact = half / 2;
  const int64_t base = relative_position > 0 ? half : 0;
  const int64_t n = relative_position < 0 ? -relative_position : relative_position;
  if (n < exact) return base + n;
  // torch: max_exact + long(log(float(n) / max_exact) / log(max_distance / max_exact) *
  // (num_buckets - max_exact)), each step rounded to float32, truncated toward zero.
  const float ratio = static_cast<float>(n) / static_cast<float>(exact);
  const float span = static_cast<float>(std::log(static_cast<double>(max_distance) / exact));
  const float scaled = std::log(ratio) / span * static_cast<float>(half - exact);
  return base + std::min(exact + static_cast<int64_t>(scaled), half - 1);
}

Tensor umt5_position_bias(const Tensor& table_in, int64_t length, int64_t max_distance) {
  const Tensor table = table_in.to_f32();
  if (table.ndim() != 2)
    fail("relative attention bias must be [buckets, heads], got ", shape_str(table.shape()));
  const int64_t buckets = table.dim(0), heads = table.dim(1), offsets = 2 * length - 1;
  Tensor out = Tensor::empty({heads, std::max<int64_t>(offsets, 0)});
  const float* t = table.f32();
  float* o = out.f32();
  for (int64_t r = -(length - 1); r <= length - 1; ++r) {
    const int64_t b = umt5_relative_bucket(r, buckets, max_distance);
    for (int64_t h = 0; h < heads; ++h) o[h * offsets + r + length - 1] = t[b * heads + h];
  }
  return out;
}

Tensor biased_attention(Backend& ops, const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                        const Tensor& bias_in) {
  const Tensor q = ops.download(q_in), k = ops.download(k_in), v = ops.download(v_in);
  const Tensor bias = bias_in.to_f32();
  if (q.ndim() != 3 || q.shape() != k.shape() || q.shape() != v.shape())
    fail("biased attention: q ", shape_str(q.shape()), ", k ", shape_str(k.shape()), ", v ",
         shape_str(v.shape()), " must all be the same [L, heads, head_dim]");
  const int64_t L = q.dim(0), H = q.dim(1), D = q.dim(2);
  if (bias.shape() != Shape{H, 2 * L - 1})
    fail("biased attention: bias ", shape_str(bias.shape()), ", expected [", H, ", ", 2 * L - 1,
         "]");
  Tensor out = Tensor::empty({L, H, D});
  const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32(), *bp = bias.f32();
  float* op = out.f32();
  parallel_for(H * L, 8, [&](int64_t r0, int64_t r1) {
    std::vector<double> scores(L), acc(D);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r / L, i = r % L;
      const float* qr = qp + (i * H + h) * D;
      const float* br = bp + h * (2 * L - 1) + (L - 1 - i);  // br[j]: key j, query i
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < L; ++j) {
        const float* kr = kp + (j * H + h) * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(qr[d]) * kr[d];
        scores[j] = s + br[j];
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < L; ++j) {
        const double p = std::exp(scores[j] - mx);
        sum += p;
        const float* vr = vp + (j * H + h) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += p * vr[d];
      }
      float* orow = op + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d) orow[d] = static_cast<float>(acc[d] / sum);
    }
  });
  return ops.upload(out);
}

}  // namespace raylight
