// Suite cases for the family ops: the DiT's modulation and latent <-> token layout
// (ops/dit_ops.h), T5's offset-biased attention (ops/t5_ops.h), and the VAEs' convolutions
// (3-D for Wan, 2-D for the image VAEs), norms (Wan's channel RMS norm, GroupNorm) and
// upsampling (ops/vae_ops.h). Convolution cases cover the Wan VAE's kinds (1x1,
// causal 3x3x3 with and without cached frames, spatial and temporal downsampling) and odd
// geometry; one has enough pixels to need several products on a GPU.
#include <cmath>

#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kPointwise = 5e-3, kReduction = 1e-2;

OpCase refused(OpCase c) {
  c.refused = true;
  return c;
}

void dit(std::vector<OpCase>& cs) {
  for (auto [M, D] : {std::pair<int64_t, int64_t>{5, 37}, {3, 1536}, {17, 5120}, {0, 64}}) {
    auto in = [M, D](Inputs& r) {
      return Tensors{r.randn({M, D}, 2.0f, 0.5f), r.randn({D}, 0.2f), r.randn({D}, 0.2f)};
    };
    const std::string shape = fmt("M=%lld D=%lld", (long long)M, (long long)D);
    cs.push_back(make("modulate", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.modulate(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]))});
    }));
    cs.push_back(make("layer_norm_modulate", shape, kPointwise, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.layer_norm_modulate(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), 1e-6f)});
    }));
  }
  cs.push_back(refused(make("modulate", "refuses a missing scale", 0,
                            [](Inputs& r) { return Tensors{r.randn({2, 8}), r.randn({8})}; },
                            [](Backend& be, const Tensors& t) {
                              be.modulate(be.upload(t[0]), be.upload(t[1]), {});
                              return Tensors{};
                            })));
  struct Patch { Shape x; PatchSize p; };
  for (Patch c : {Patch{{5, 3, 6, 10}, {1, 2, 2}}, {{16, 4, 8, 8}, {2, 2, 2}}, {{3, 1, 2, 2}, {1, 1, 1}},
                  {{4, 0, 2, 2}, {1, 2, 2}}}) {
    cs.push_back(make("patchify", shape_str(c.x) + fmt(" patch %d,%d,%d", c.p.t, c.p.h, c.p.w), 0,
                      [c](Inputs& r) { return Tensors{r.randn(c.x)}; },
                      [c](Backend& be, const Tensors& t) { return down(be, {be.patchify(be.upload(t[0]), c.p)}); }));
    const int64_t gf = c.x[1] / c.p.t, gh = c.x[2] / c.p.h, gw = c.x[3] / c.p.w, C = c.x[0];
    cs.push_back(make("unpatchify", fmt("grid %lldx%lldx%lld, %lld channels", (long long)gf, (long long)gh,
                                        (long long)gw, (long long)C) + fmt(" patch %d,%d,%d", c.p.t, c.p.h, c.p.w),
                      0, [=](Inputs& r) { return Tensors{r.randn({gf * gh * gw, C * c.p.volume()})}; },
                      [=](Backend& be, const Tensors& t) {
                        return down(be, {be.unpatchify(be.upload(t[0]), gf, gh, gw, C, c.p)});
                      }));
  }
  cs.push_back(refused(make("patchify", "refuses a latent the patch does not divide", 0,
                            [](Inputs& r) { return Tensors{r.randn({3, 2, 5, 10})}; },
                            [](Backend& be, const Tensors& t) {
                              be.patchify(be.upload(t[0]), PatchSize{1, 2, 2});
                              return Tensors{};
                            })));
}

void t5(std::vector<OpCase>& cs) {
  struct Case { int64_t Lq, Lk, H, D; float scale; };
  for (Case c : {Case{1, 1, 1, 64, 1.f}, Case{37, 53, 3, 64, 1.f}, Case{512, 512, 4, 64, 1.f},
                 Case{100, 7, 2, 128, 0.125f}, Case{5, 300, 2, 32, 1.f}, Case{0, 5, 2, 64, 1.f}}) {
    // q, k at 0.3 and biases of a few units, the sizes umT5 produces.
    cs.push_back(make("attention_offset_bias",
                      fmt("Lq=%lld Lk=%lld H=%lld D=%lld scale=%g", (long long)c.Lq, (long long)c.Lk, (long long)c.H,
                          (long long)c.D, c.scale),
                      kReduction,
                      [c](Inputs& r) {
                        return Tensors{r.randn({c.Lq, c.H, c.D}, 0.3f), r.randn({c.Lk, c.H, c.D}, 0.3f),
                                       r.randn({c.Lk, c.H, c.D}), r.randn({c.H, c.Lq + c.Lk - 1}, 2.f)};
                      },
                      [c](Backend& be, const Tensors& t) {
                        return down(be, {be.attention_offset_bias(be.upload(t[0]), be.upload(t[1]), be.upload(t[2]),
                                                                  t[3], c.scale)});
                      }));
  }
  cs.push_back(refused(make("attention_offset_bias", "refuses a bias row that is too short", 0,
                            [](Inputs& r) { return Tensors{r.randn({4, 2, 64}), r.randn({2, 6})}; },
                            [](Backend& be, const Tensors& t) {
                              Tensor q = be.upload(t[0]);
                              be.attention_offset_bias(q, q, q, t[1], 1.f);
                              return Tensors{};
                            })));
}

using Spec = Backend::Conv3dSpec;

Spec spec(int st, int sh, int sw, int pt, int top, int bottom, int left, int right) {
  Spec s;
  s.stride_t = st, s.stride_h = sh, s.stride_w = sw, s.pad_t = pt;
  s.pad_top = top, s.pad_bottom = bottom, s.pad_left = left, s.pad_right = right;
  return s;
}

void vae(std::vector<OpCase>& cs) {
  struct Conv {
    const char* what;
    int64_t T, Tp, C, H, W, Co, kt, kh, kw;
    Spec s;
  };
  const Conv convs[] = {
      {"1x1 (qkv, shortcut)", 1, 0, 3, 5, 7, 4, 1, 1, 1, spec(1, 1, 1, 0, 0, 0, 0, 0)},
      {"causal 3x3x3, no cache", 3, 0, 16, 9, 11, 24, 3, 3, 3, spec(1, 1, 1, 2, 1, 1, 1, 1)},
      {"causal 3x3x3, 2 cached frames", 2, 2, 12, 8, 13, 10, 3, 3, 3, spec(1, 1, 1, 0, 1, 1, 1, 1)},
      {"1 cached + 1 zero frame", 4, 1, 8, 6, 6, 8, 3, 3, 3, spec(1, 1, 1, 1, 1, 1, 1, 1)},
      {"spatial downsample", 2, 0, 5, 17, 15, 7, 1, 3, 3, spec(1, 2, 2, 0, 0, 1, 0, 1)},
      {"temporal downsample", 5, 0, 6, 7, 9, 6, 3, 1, 1, spec(2, 1, 1, 0, 0, 0, 0, 0)},
      {"temporal downsample, cached frame", 3, 1, 7, 5, 9, 5, 3, 1, 1, spec(2, 1, 1, 0, 0, 0, 0, 0)},
      {"2-D, odd sizes", 1, 0, 32, 31, 33, 3, 1, 3, 3, spec(1, 1, 1, 0, 1, 1, 1, 1)},
      {"asymmetric everything", 2, 0, 9, 10, 12, 11, 2, 3, 2, spec(1, 2, 1, 1, 0, 2, 1, 0)},
      {"pixels in several GPU products", 1, 0, 512, 128, 128, 8, 3, 3, 3, spec(1, 1, 1, 2, 1, 1, 1, 1)},
  };
  for (const Conv& c : convs) {
    const int64_t K = c.C * c.kt * c.kh * c.kw;
    auto in = [c, K](Inputs& r) {
      return Tensors{r.randn({c.T, c.C, c.H, c.W}), c.Tp ? r.randn({c.Tp, c.C, c.H, c.W}) : Tensor(),
                     r.randn({c.Co, c.C, c.kt, c.kh, c.kw}, 1.0f / std::sqrt(float(K))), r.randn({c.Co}, 0.1f)};
    };
    const std::string shape = std::string(c.what) + fmt(": x [%lld,%lld,%lld,%lld] w [%lld,%lld,%lld,%lld,%lld]",
                                                         (long long)c.T, (long long)c.C, (long long)c.H, (long long)c.W,
                                                         (long long)c.Co, (long long)c.C, (long long)c.kt,
                                                         (long long)c.kh, (long long)c.kw);
    for (bool bias : {true, false})
      cs.push_back(make("conv3d", shape + (bias ? ", bias" : ""), kReduction, in, [c, bias](Backend& be, const Tensors& t) {
        return down(be, {be.conv3d(be.upload(t[0]), c.Tp ? be.upload(t[1]) : Tensor(), be.weight(t[2], 1.0f),
                                   bias ? be.weight(t[3], 1.0f) : Tensor(), c.s)});
      }));
  }
  cs.push_back(refused(make("conv3d", "refuses a kernel deeper than the padded clip", 0,
                            [](Inputs& r) { return Tensors{r.randn({1, 4, 5, 5}), r.randn({2, 4, 3, 3, 3})}; },
                            [](Backend& be, const Tensors& t) {
                              be.conv3d(be.upload(t[0]), {}, be.weight(t[1], 1.0f), {}, {});
                              return Tensors{};
                            })));
  // 2-D convolutions of the image VAEs (Flux, Qwen-Image): 3x3 padding 1, the Downsample's
  // (0, 1, 0, 1) padding with stride 2, 1x1 shortcuts, a batch of images, none.
  struct Conv2 {
    const char* what;
    int64_t N, C, H, W, Co, kh, kw;
    int stride, top, bottom, left, right;
  };
  for (Conv2 c : {Conv2{"3x3 pad 1", 1, 16, 33, 31, 24, 3, 3, 1, 1, 1, 1, 1},
                  {"downsample", 2, 8, 17, 20, 8, 3, 3, 2, 0, 1, 0, 1},
                  {"1x1", 3, 12, 5, 7, 20, 1, 1, 1, 0, 0, 0, 0},
                  {"wide 3x3", 1, 128, 32, 32, 128, 3, 3, 1, 1, 1, 1, 1},
                  {"no images", 0, 4, 6, 6, 5, 3, 3, 1, 1, 1, 1, 1}}) {
    Backend::Conv2dSpec s;
    s.stride_h = s.stride_w = c.stride;
    s.pad_top = c.top, s.pad_bottom = c.bottom, s.pad_left = c.left, s.pad_right = c.right;
    cs.push_back(make("conv2d",
                      std::string(c.what) + fmt(": x [%lld,%lld,%lld,%lld] w [%lld,%lld,%lld,%lld]", (long long)c.N,
                                                (long long)c.C, (long long)c.H, (long long)c.W, (long long)c.Co,
                                                (long long)c.C, (long long)c.kh, (long long)c.kw),
                      kReduction,
                      [c](Inputs& r) {
                        return Tensors{r.randn({c.N, c.C, c.H, c.W}),
                                       r.randn({c.Co, c.C, c.kh, c.kw}, 1.0f / std::sqrt(float(c.C * c.kh * c.kw))),
                                       r.randn({c.Co}, 0.1f)};
                      },
                      [s](Backend& be, const Tensors& t) {
                        return down(be, {be.conv2d(be.upload(t[0]), be.weight(t[1], 1.0f), be.weight(t[2], 1.0f), s)});
                      }));
  }
  cs.push_back(refused(make("conv2d", "refuses a weight for other channels", 0,
                            [](Inputs& r) { return Tensors{r.randn({1, 4, 5, 5}), r.randn({2, 3, 3, 3})}; },
                            [](Backend& be, const Tensors& t) {
                              be.conv2d(be.upload(t[0]), be.weight(t[1], 1.0f), {}, {});
                              return Tensors{};
                            })));
  // GroupNorm: the Flux VAE's (32 groups, eps 1e-6, affine, then SiLU) per image, a group
  // of millions of values (many partial blocks on a GPU), HunyuanVideo's over all frames,
  // odd groups without affine, none.
  struct Gn {
    const char* what;
    int64_t T, C, H, W, groups;
    bool affine, silu, over_frames;
  };
  for (Gn g : {Gn{"Flux resblock", 2, 64, 12, 10, 32, true, true, false},
               {"big groups", 1, 8, 512, 512, 2, true, false, false},
               {"over frames", 5, 32, 9, 11, 32, true, true, true},
               {"over frames, big", 9, 16, 64, 60, 4, false, false, true},
               {"odd, plain", 3, 12, 7, 3, 4, false, false, false},
               {"one group", 2, 5, 3, 3, 1, true, false, false},
               {"no frames", 0, 8, 4, 4, 4, true, true, false}}) {
    Backend::GroupNormSpec spec;
    spec.groups = g.groups;
    spec.silu = g.silu;
    spec.over_frames = g.over_frames;
    cs.push_back(make("group_norm",
                      std::string(g.what) + fmt(": [%lld,%lld,%lld,%lld] %lld groups", (long long)g.T, (long long)g.C,
                                                (long long)g.H, (long long)g.W, (long long)g.groups),
                      kPointwise,
                      [g](Inputs& r) {
                        return Tensors{r.randn({g.T, g.C, g.H, g.W}, 2.0f, 0.7f), r.randn({g.C}, 0.2f, 1.0f),
                                       r.randn({g.C}, 0.2f)};
                      },
                      [g, spec](Backend& be, const Tensors& t) {
                        return down(be, {be.group_norm(be.upload(t[0]), g.affine ? be.upload(t[1]) : Tensor(),
                                                       g.affine ? be.upload(t[2]) : Tensor(), spec)});
                      }));
  }
  cs.push_back(refused(make("group_norm", "refuses channels the groups do not divide", 0,
                            [](Inputs& r) { return Tensors{r.randn({1, 6, 2, 2})}; },
                            [](Backend& be, const Tensors& t) {
                              Backend::GroupNormSpec spec;
                              spec.groups = 4;
                              be.group_norm(be.upload(t[0]), {}, {}, spec);
                              return Tensors{};
                            })));
  for (auto [T, C, H, W] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1}, {2, 3, 5, 7}, {3, 96, 17, 9},
                            {1, 384, 12, 20}, {0, 4, 3, 3}}) {
    const std::string shape = fmt("[%lld,%lld,%lld,%lld]", (long long)T, (long long)C, (long long)H, (long long)W);
    auto in = [=](Inputs& r) { return Tensors{r.randn({T, C, H, W}, 2.0f, 0.3f), r.randn({C}, 0.1f, 1.0f)}; };
    for (bool silu : {false, true})
      cs.push_back(make("channel_rms_norm", shape + (silu ? ", silu" : ""), kPointwise, in,
                        [silu](Backend& be, const Tensors& t) {
                          return down(be, {be.channel_rms_norm(be.upload(t[0]), be.upload(t[1]), silu)});
                        }));
    cs.push_back(make("upsample_nearest2x", shape, 0, in, [](Backend& be, const Tensors& t) {
      return down(be, {be.upsample_nearest2x(be.upload(t[0]))});
    }));
  }
}

}  // namespace

std::vector<OpCase> family_cases() {
  std::vector<OpCase> cs;
  dit(cs);
  t5(cs);
  vae(cs);
  return cs;
}

}  // namespace raylight::suite
