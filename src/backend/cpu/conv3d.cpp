// Direct 3-D convolution (PyTorch Conv3d cross-correlation) over frame-major clips
// [T, C, H, W], the one conv kernel the video VAE is built from (a 2-D conv is kt = 1, a
// causal conv passes its cached frames as `past`).
//
// Why direct and not im2col + linear: im2col of a 3x3x3 conv stores the input 27 times
// (tens of GB for a 96-channel 720p chunk); the direct loop needs only one zero-padded
// copy of the input. The micro-kernel keeps a tile of 4 output channels x 8 pixels (16 on
// CPUs with AVX2, dispatched at run time) in registers and streams the taps through it,
// which compilers vectorise without reassociating sums. Every output is bias + taps summed
// in the fixed order (ci, kt, kh, kw), with taps on leading zero frames skipped, so a
// result does not depend on how the clip was split into chunks: a chunked decode equals a
// whole one bit for bit.
#include <algorithm>
#include <cstring>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/parallel_for.h"

namespace raylight::cpu {
namespace {

constexpr int kCo = 4;  // output channels per register tile

struct Geometry {
  int64_t frames;          // real input frames: past + x
  int64_t cin, cout, kt, kh, kw;
  int64_t st, sh, sw, pad_t;
  int64_t to, ho, wo;      // output extent
  int64_t hp, wrow;        // padded plane height and row length
  int64_t blocks;          // output-channel blocks of kCo
};

// A register of L floats (GCC/Clang vector extension): the tile is NV of them per channel.
template <int L>
struct VecOf;
template <>
struct VecOf<4> {
  typedef float type __attribute__((vector_size(16)));
};
template <>
struct VecOf<8> {
  typedef float type __attribute__((vector_size(32)));
};
template <int L>
using Vec = typename VecOf<L>::type;

// L pixels of a padded row starting at p, `sw` floats apart.
template <int L, int SW>
[[gnu::always_inline]] inline void load_px(Vec<L>& v, const float* p, int64_t sw) {
  if constexpr (SW == 1) {
    std::memcpy(&v, p, sizeof(v));
  } else {
    Vec<L> t = {};
    for (int k = 0; k < L; ++k) t[k] = p[k * sw];
    v = t;
  }
}

// One output row (frame `t`, row `y`) of kCo channels starting at block `cb`, in tiles of
// NV * L pixels. SW / KW: compile-time stride and kernel width, or 0 to read them from g.
template <int L, int NV, int SW, int KW>
[[gnu::always_inline]] inline void conv_row_body(const Geometry& g, const float* padded, const float* wpk,
                                                 const float* bias, float* out, int64_t t, int64_t cb,
                                                 int64_t y) {
  constexpr int kPx = L * NV;
  const int64_t sw = SW ? SW : g.sw, kw = KW ? KW : g.kw;
  const int64_t taps = g.kt * g.kh * kw;
  const int64_t plane = g.hp * g.wrow;
  const int64_t co0 = cb * kCo, nco = std::min<int64_t>(kCo, g.cout - co0);
  for (int64_t x0 = 0; x0 < g.wo; x0 += kPx) {
    Vec<L> acc[kCo][NV];
    for (int u = 0; u < kCo; ++u)
      for (int v = 0; v < NV; ++v) acc[u][v] = Vec<L>{} + ((bias && u < nco) ? bias[co0 + u] : 0.0f);
    for (int64_t ci = 0; ci < g.cin; ++ci) {
      const float* wci = wpk + (cb * g.cin + ci) * taps * kCo;
      for (int64_t a = 0; a < g.kt; ++a) {
        const int64_t f = t * g.st + a - g.pad_t;  // index among the real frames
        if (f < 0) continue;                        // a leading zero frame
        const float* pl = padded + (f * g.cin + ci) * plane;
        for (int64_t i = 0; i < g.kh; ++i) {
          const float* row = pl + (y * g.sh + i) * g.wrow + x0 * sw;
          const float* wk = wci + (a * g.kh + i) * kw * kCo;
          for (int64_t j = 0; j < kw; ++j) {
            Vec<L> in[NV];
            for (int v = 0; v < NV; ++v) load_px<L, SW>(in[v], row + v * L * sw + j, sw);
            for (int u = 0; u < kCo; ++u) {
              const float wv = wk[j * kCo + u];
              for (int v = 0; v < NV; ++v) acc[u][v] += wv * in[v];
            }
          }
        }
      }
    }
    const int64_t npx = std::min<int64_t>(kPx, g.wo - x0);
    for (int64_t u = 0; u < nco; ++u) {
      float* o = out + ((t * g.cout + co0 + u) * g.ho + y) * g.wo + x0;
      if (npx == kPx) {
        std::memcpy(o, acc[u], sizeof(acc[u]));
      } else {
        const float* lanes = reinterpret_cast<const float*>(acc[u]);
        for (int64_t p = 0; p < npx; ++p) o[p] = lanes[p];
      }
    }
  }
}

// Baseline build (SSE2 on x86-64): 4 channels x 2 registers of 4 = 8-pixel tiles.
constexpr int kPxBase = 8;
template <int SW, int KW>
void conv_row(const Geometry& g, const float* padded, const float* wpk, const float* bias, float* out,
              int64_t t, int64_t cb, int64_t y) {
  conv_row_body<4, 2, SW, KW>(g, padded, wpk, bias, out, t, cb, y);
}

using RowFn = void (*)(const Geometry&, const float*, const float*, const float*, float*, int64_t,
                       int64_t, int64_t);

#if defined(__GNUC__) && defined(__x86_64__)
// The same loop compiled for AVX2 + FMA (chosen at run time when the CPU has them): 4 x 16
// tiles in eight 8-wide registers, about 3x the baseline. FMA rounds a*b+c once, so its
// results differ from the baseline's in the last bits; each build is deterministic.
constexpr int kPxWide = 16;
template <int SW, int KW>
__attribute__((target("avx2,fma"))) void conv_row_avx2(const Geometry& g, const float* padded,
                                                      const float* wpk, const float* bias, float* out,
                                                      int64_t t, int64_t cb, int64_t y) {
  conv_row_body<8, 2, SW, KW>(g, padded, wpk, bias, out, t, cb, y);
}
bool have_avx2() { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
constexpr int kPxWide = kPxBase;
bool have_avx2() { return false; }
#endif

// The row function for this geometry: specialised for the VAE's convs (3-wide stride 1,
// 1x1, 3-wide stride 2), generic otherwise.
RowFn pick_row(const Geometry& g, bool wide) {
#if defined(__GNUC__) && defined(__x86_64__)
  if (wide) {
    if (g.sw == 1 && g.kw == 3) return &conv_row_avx2<1, 3>;
    if (g.sw == 1 && g.kw == 1) return &conv_row_avx2<1, 1>;
    if (g.sw == 2 && g.kw == 3) return &conv_row_avx2<2, 3>;
    return &conv_row_avx2<0, 0>;
  }
#else
  (void)wide;
#endif
  if (g.sw == 1 && g.kw == 3) return &conv_row<1, 3>;
  if (g.sw == 1 && g.kw == 1) return &conv_row<1, 1>;
  if (g.sw == 2 && g.kw == 3) return &conv_row<2, 3>;
  return &conv_row<0, 0>;
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
              const Backend::Conv3dSpec& s) {
  const int64_t T = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t Tp = past.defined() ? past.dim(0) : 0;

  Geometry g;
  g.frames = Tp + T;
  g.cin = C;
  g.cout = w.dim(0);
  g.kt = w.dim(2), g.kh = w.dim(3), g.kw = w.dim(4);
  g.st = s.stride_t, g.sh = s.stride_h, g.sw = s.stride_w, g.pad_t = s.pad_t;
  const int64_t tin = s.pad_t + g.frames, hin = H + s.pad_top + s.pad_bottom,
                win = W + s.pad_left + s.pad_right;
  g.to = (tin - g.kt) / g.st + 1;
  g.ho = (hin - g.kh) / g.sh + 1;
  g.wo = (win - g.kw) / g.sw + 1;
  g.hp = hin;
  const bool wide = have_avx2();
  const int64_t px = wide ? kPxWide : kPxBase;
  const int64_t tiles = (g.wo + px - 1) / px;
  g.wrow = std::max(win, (tiles * px - 1) * g.sw + g.kw);  // tiles may read past the edge
  g.blocks = (g.cout + kCo - 1) / kCo;

  // Zero-padded copy of the real frames (past, then x): [frames, Cin, hp, wrow].
  std::vector<float> padded(static_cast<size_t>(g.frames * C * g.hp * g.wrow));
  const float* xp = x.f32();
  const float* pp = Tp ? past.f32() : nullptr;
  parallel_for(g.frames * C, 4, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t f = p / C, c = p % C;
      const float* src = f < Tp ? pp + (f * C + c) * H * W : xp + ((f - Tp) * C + c) * H * W;
      float* dst = padded.data() + p * g.hp * g.wrow;
      std::fill(dst, dst + g.hp * g.wrow, 0.0f);
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(dst + (h + s.pad_top) * g.wrow + s.pad_left, src + h * W, W * sizeof(float));
    }
  });

  // Weights regrouped as [block][ci][kt][kh][kw][kCo], zero beyond Cout.
  const int64_t taps = g.kt * g.kh * g.kw;
  std::vector<float> wpk(static_cast<size_t>(g.blocks * C * taps * kCo), 0.0f);
  const float* wp = w.f32();
  for (int64_t co = 0; co < g.cout; ++co)
    for (int64_t ci = 0; ci < C; ++ci)
      for (int64_t k = 0; k < taps; ++k)
        wpk[((co / kCo * C + ci) * taps + k) * kCo + co % kCo] = wp[(co * C + ci) * taps + k];

  Tensor y = Tensor::empty({g.to, g.cout, g.ho, g.wo});
  float* yp = y.f32();
  const float* bp = b.defined() ? b.f32() : nullptr;
  const RowFn row = pick_row(g, wide);
  parallel_for(g.to * g.blocks * g.ho, 1, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t t = r / (g.blocks * g.ho), cb = (r / g.ho) % g.blocks, yy = r % g.ho;
      row(g, padded.data(), wpk.data(), bp, yp, t, cb, yy);
    }
  });
  return y;
}

}  // namespace raylight::cpu
