// Reference scaled-dot-product attention. One (head, query) row at a time with the full
// score row in a scratch buffer: simple and exact in double, which is what a reference
// is for. Masked keys (index >= k_valid, and past the query under a causal mask) are
// skipped, never given -inf scores, so no row can produce NaN (the public op refuses a
// mask that hides every key, and a causal row always sees key 0). Grouped-query attention
// reads key/value head h / (Hq / Hkv) for query head h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

namespace {

// softmax(q k^T * scale [+ bias]) v over keys [0, valid) (and j <= i when causal), one
// (head, query) row at a time. bias (or null) is [H, Lq + Lk - 1]: the score of query i and
// key j gets bias[h, j - i + Lq - 1] (T5's relative position bias, one value per offset).
Tensor attend(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, double scale,
              const float* bias, Tensor* lse) {
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2), Hkv = k.dim(1);
  const int64_t group = H / Hkv, valid = mask.k_valid;
  Tensor out = Tensor::empty({Lq, H, D});
  if (lse) *lse = Tensor::empty({H, Lq});
  const float *qp = q.f32(), *kp = k.f32(), *vp = v.f32();
  float* op = out.f32();
  float* lp = lse ? lse->f32() : nullptr;
  const int64_t offsets = Lq + Lk - 1;
  parallel_for(H * Lq, 8, [&](int64_t r0, int64_t r1) {
    std::vector<double> scores(valid), acc(D);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t h = r / Lq, i = r % Lq, hk = h / group;
      const int64_t n = mask.causal ? std::min(valid, i + 1) : valid;
      const float* qr = qp + (i * H + h) * D;
      const float* br = bias ? bias + h * offsets + (Lq - 1 - i) : nullptr;  // br[j]: key j
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        const float* kr = kp + (j * Hkv + hk) * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(qr[d]) * kr[d];
        scores[j] = s * scale + (br ? br[j] : 0.0);
        mx = std::max(mx, scores[j]);
      }
      double sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j < n; ++j) {
        const double p = std::exp(scores[j] - mx);
        sum += p;
        const float* vr = vp + (j * Hkv + hk) * D;
        for (int64_t d = 0; d < D; ++d) acc[d] += p * vr[d];
      }
      float* orow = op + (i * H + h) * D;
      for (int64_t d = 0; d < D; ++d) orow[d] = static_cast<float>(acc[d] / sum);
      if (lp) lp[h * Lq + i] = static_cast<float>(mx + std::log(sum));
    }
  });
  return out;
}

}  // namespace

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, AttentionMask mask, Tensor* lse) {
  return attend(q, k, v, mask, 1.0 / std::sqrt(static_cast<double>(q.dim(2))), nullptr, lse);
}

Tensor attention_offset_bias(const Tensor& q, const Tensor& k, const Tensor& v,
                             const Tensor& bias_by_offset, float scale) {
  return attend(q, k, v, AttentionMask{k.dim(0), false}, scale, bias_by_offset.f32(), nullptr);
}

}  // namespace raylight::cpu
