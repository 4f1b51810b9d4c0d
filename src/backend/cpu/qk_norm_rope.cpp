// q/k RMSNorm and RoPE in one pass over the rows of a product (qkv_norm_rope, norm_rope).
// The arithmetic is rms_norm's then apply_rope's, value for value, so the fused path gives
// the CPU results of the unfused one bit for bit.
#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
namespace {

// Normalises `rows` rows of H*D values (src rows `stride` apart) into out [rows, H, D]:
// per head or over the whole row, times the weight, then turned by table rows (or not).
void norm_rope_rows(const float* src, int64_t stride, int64_t rows, int64_t H, int64_t D, const float* w,
                    QkNormSpan span, float eps, const float* table, float* out) {
  const int64_t n = span == QkNormSpan::Head ? D : H * D, half = D / 2;
  parallel_for(rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = src + r * stride;
      float* o = out + r * H * D;
      // rms_norm's formula over each span of n values (cpu/norm.cpp).
      for (int64_t g = 0; g < H * D; g += n) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[g + i]) * x[g + i];
        const double inv = 1.0 / std::sqrt(ss / n + eps);
        for (int64_t i = 0; i < n; ++i) o[g + i] = static_cast<float>(x[g + i] * inv * w[i]);
      }
      if (!table) continue;
      // apply_rope's (adjacent pairs), the same angles for every head.
      const float* cs = table + r * half * 2;
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          float* a = o + h * D + 2 * i;
          const float c = cs[2 * i], s = cs[2 * i + 1], re = a[0], im = a[1];
          a[0] = re * c - im * s;
          a[1] = re * s + im * c;
        }
    }
  });
}

const float* rows_of(const Tensor& table, int64_t row0, int64_t D) {
  return table.defined() ? table.f32() + row0 * D : nullptr;
}

}  // namespace

void qkv_norm_rope(const Tensor& qkv, const Tensor& q_weight, const Tensor& k_weight, QkNormSpan span, float eps,
                   const Tensor& table, Tensor& q, Tensor& k, Tensor& v, int64_t row0) {
  const int64_t rows = qkv.dim(0), H = q.dim(1), D = q.dim(2), HD = H * D;
  const float* src = qkv.f32();
  const float* t = rows_of(table, row0, D);
  norm_rope_rows(src, 3 * HD, rows, H, D, q_weight.f32(), span, eps, t, q.f32() + row0 * HD);
  norm_rope_rows(src + HD, 3 * HD, rows, H, D, k_weight.f32(), span, eps, t, k.f32() + row0 * HD);
  float* vo = v.f32() + row0 * HD;
  for (int64_t r = 0; r < rows; ++r) std::memcpy(vo + r * HD, src + r * 3 * HD + 2 * HD, HD * sizeof(float));
}

Tensor norm_rope(const Tensor& x, const Tensor& weight, QkNormSpan span, float eps, const Tensor& table,
                 int64_t heads) {
  const int64_t rows = x.dim(0), D = x.dim(1) / heads;
  Tensor out = Tensor::empty({rows, heads, D});
  norm_rope_rows(x.f32(), x.dim(1), rows, heads, D, weight.f32(), span, eps, rows_of(table, 0, D), out.f32());
  return out;
}

}  // namespace raylight::cpu
