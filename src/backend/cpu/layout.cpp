// Token layout ops: patchify / unpatchify and the rotary embedding (adjacent pairs or
// halves, over all tokens or a run of them).
#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {

Tensor patchify(const Tensor& x, PatchSize p) {
  const int64_t C = x.dim(0), F = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t gf = F / p.t, gh = H / p.h, gw = W / p.w, feat = C * p.volume();
  Tensor out = Tensor::empty({gf * gh * gw, feat});
  const float* xp = x.f32();
  float* op = out.f32();
  parallel_for(gf * gh * gw, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t f = t / (gh * gw), h = (t / gw) % gh, w = t % gw;
      float* row = op + t * feat;
      for (int64_t c = 0; c < C; ++c)
        for (int a = 0; a < p.t; ++a)
          for (int b = 0; b < p.h; ++b)
            for (int e = 0; e < p.w; ++e)
              *row++ = xp[((c * F + f * p.t + a) * H + h * p.h + b) * W + w * p.w + e];
    }
  });
  return out;
}

Tensor unpatchify(const Tensor& tokens, int64_t gf, int64_t gh, int64_t gw, int64_t C,
                  PatchSize p) {
  const int64_t feat = C * p.volume();
  const int64_t F = gf * p.t, H = gh * p.h, W = gw * p.w;
  Tensor out = Tensor::empty({C, F, H, W});
  const float* tp = tokens.f32();
  float* op = out.f32();
  parallel_for(gf * gh * gw, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t f = t / (gh * gw), h = (t / gw) % gh, w = t % gw;
      const float* row = tp + t * feat;
      for (int a = 0; a < p.t; ++a)
        for (int b = 0; b < p.h; ++b)
          for (int e = 0; e < p.w; ++e)
            for (int64_t c = 0; c < C; ++c)
              op[((c * F + f * p.t + a) * H + h * p.h + b) * W + w * p.w + e] = *row++;
    }
  });
  return out;
}

void apply_rope(Tensor& x, const Tensor& table, RopePairs pairs, int64_t first_token) {
  const int64_t L = table.dim(0), H = x.dim(1), half = table.dim(1);
  float* xp = x.f32() + first_token * H * half * 2;
  const float* tp = table.f32();
  // Pair i of a head is (2i, 2i+1) or (i, i + D/2); either way it turns by angle i.
  const int64_t stride = pairs == RopePairs::Adjacent ? 2 : 1, other = pairs == RopePairs::Adjacent ? 1 : half;
  parallel_for(L, 16, [&](int64_t l0, int64_t l1) {
    for (int64_t l = l0; l < l1; ++l)
      for (int64_t h = 0; h < H; ++h) {
        float* v = xp + (l * H + h) * half * 2;
        const float* cs = tp + l * half * 2;
        for (int64_t i = 0; i < half; ++i) {
          const float c = cs[2 * i], s = cs[2 * i + 1];
          float* a = v + i * stride;
          float* b = a + other;
          const float re = *a, im = *b;
          *a = re * c - im * s;
          *b = re * s + im * c;
        }
      }
  });
}

}  // namespace raylight::cpu
