// The video VAE's ops on CUDA (conv3d, channel_rms_norm, upsample_nearest2x, and the
// one-head GEMM attention of the VAE's middle block, head size = channels) against the CPU
// reference on fresh random inputs, outputs poisoned (NaN) first; then the tiny VAE's decode
// on CUDA against the CPU. Tolerances (relative L2): pointwise ops 5e-3 (bf16 rounding),
// products / attention 1e-2, the whole tiny decode (30-odd bf16 layers) 3e-2.
//
// CudaVaeBench.* are measurements, not tests: they print time and peak device memory for
// the real-size Wan VAE decode and the umT5-XXL-shaped encoder, and skip unless
// RAYLIGHT_BENCH=1 (RAYLIGHT_BENCH_720P=1 adds the 720x1280 decode).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "cuda_test_util.h"
#include "models/t5/umt5_config.h"
#include "models/t5/umt5_encoder.h"
#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_config.h"
#include "parallel/weight_store.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

using CudaVaeOps = GpuTest;

struct ConvCase {
  int64_t T, Tp, C, H, W, Co, kt, kh, kw;
  Backend::Conv3dSpec s;
};

Backend::Conv3dSpec spec(int st, int sh, int sw, int pt, int top, int bottom, int left, int right) {
  Backend::Conv3dSpec s;
  s.stride_t = st, s.stride_h = sh, s.stride_w = sw, s.pad_t = pt;
  s.pad_top = top, s.pad_bottom = bottom, s.pad_left = left, s.pad_right = right;
  return s;
}

TEST_F(CudaVaeOps, Conv3dMatchesCpu) {
  const ConvCase cases[] = {
      {1, 0, 3, 5, 7, 4, 1, 1, 1, spec(1, 1, 1, 0, 0, 0, 0, 0)},        // 1x1 (qkv / shortcut)
      {3, 0, 16, 9, 11, 24, 3, 3, 3, spec(1, 1, 1, 2, 1, 1, 1, 1)},    // causal conv, no cache
      {2, 2, 12, 8, 13, 10, 3, 3, 3, spec(1, 1, 1, 0, 1, 1, 1, 1)},    // with 2 cached frames
      {4, 1, 8, 6, 6, 8, 3, 3, 3, spec(1, 1, 1, 1, 1, 1, 1, 1)},       // 1 cached + 1 zero frame
      {2, 0, 5, 17, 15, 7, 1, 3, 3, spec(1, 2, 2, 0, 0, 1, 0, 1)},     // spatial downsample
      {5, 0, 6, 7, 9, 6, 3, 1, 1, spec(2, 1, 1, 0, 0, 0, 0, 0)},       // temporal downsample
      {3, 1, 7, 5, 9, 5, 3, 1, 1, spec(2, 1, 1, 0, 0, 0, 0, 0)},       // ... with a cached frame
      {1, 0, 32, 31, 33, 3, 1, 3, 3, spec(1, 1, 1, 0, 1, 1, 1, 1)},    // 2-D conv, odd sizes
      {2, 0, 9, 10, 12, 11, 2, 3, 2, spec(1, 2, 1, 1, 0, 2, 1, 0)},    // asymmetric everything
      {1, 0, 512, 128, 128, 8, 3, 3, 3, spec(1, 1, 1, 2, 1, 1, 1, 1)}, // pixels in several GEMMs
  };
  for (const ConvCase& c : cases) {
    const int64_t K = c.C * c.kt * c.kh * c.kw;
    Tensor x = rand_bf16({c.T, c.C, c.H, c.W});
    Tensor past = c.Tp ? rand_bf16({c.Tp, c.C, c.H, c.W}) : Tensor();
    Tensor w = rand_bf16({c.Co, c.C, c.kt, c.kh, c.kw}, 1.0f / std::sqrt(float(K)));
    Tensor b = rand_bf16({c.Co}, 0.1f);
    Tensor want = cpu_ref().conv3d(x, past, w, b, c.s);
    Tensor got = down(gpu->conv3d(up(x), c.Tp ? up(past) : Tensor(), gpu->weight(w, 1.0f), gpu->weight(b, 1.0f), c.s));
    EXPECT_LT(rel_err(got, want), 1e-2) << "C " << c.C << " " << c.H << "x" << c.W << " Co " << c.Co << " k "
                                        << c.kt << c.kh << c.kw;
    Tensor want_nb = cpu_ref().conv3d(x, past, w, {}, c.s);
    Tensor got_nb = down(gpu->conv3d(up(x), c.Tp ? up(past) : Tensor(), gpu->weight(w, 1.0f), {}, c.s));
    EXPECT_LT(rel_err(got_nb, want_nb), 1e-2);
  }
}

TEST_F(CudaVaeOps, ChannelRmsNormAndUpsample) {
  for (auto [T, C, H, W] : {std::tuple{1, 1, 1, 1}, {2, 3, 5, 7}, {3, 96, 17, 9}, {1, 384, 12, 20}}) {
    Tensor x = rand_bf16({T, C, H, W}, 2.0f, 0.3f), g = rand_bf16({C}, 0.1f, 1.0f);
    for (bool silu : {false, true})
      EXPECT_LT(rel_err(down(gpu->channel_rms_norm(up(x), gpu->weight(g, 1.0f), silu)),
                        cpu_ref().channel_rms_norm(x, g, silu)),
                5e-3)
          << C << " silu " << silu;
    Tensor u = down(gpu->upsample_nearest2x(up(x)));
    EXPECT_EQ(rel_err(u, cpu_ref().upsample_nearest2x(x)), 0.0);
  }
}

// One head of dim = channels (the VAE middle attention: 384 in the real VAE).
TEST_F(CudaVaeOps, OneHeadWideAttention) {
  for (auto [L, D] : {std::tuple{7, 32}, {100, 384}, {333, 384}, {64, 200}}) {
    Tensor q = rand_bf16({L, 1, D}), k = rand_bf16({L, 1, D}), v = rand_bf16({L, 1, D});
    Tensor lse;
    Tensor want_lse;
    Tensor want = cpu_ref().attention(q, k, v, -1, &want_lse);
    Tensor got = down(gpu->attention(up(q), up(k), up(v), -1, &lse));
    EXPECT_LT(rel_err(got, want), 1e-2) << L << "x" << D;
    EXPECT_LT(rel_err(down(lse), want_lse), 1e-2) << L << "x" << D;
  }
}

TEST_F(CudaVaeOps, TinyVaeDecodeMatchesCpu) {
  auto cpu_be = make_cpu_backend();
  auto ref = load_wan_vae("tiny", *cpu_be);
  auto vae = load_wan_vae("tiny", *gpu);
  Tensor z = gaussian_noise({16, 3, 6, 10}, next_seed());
  Tensor want = ref->decode(z);
  Tensor got = vae->decode(z);
  const double e = rel_err(got, want);
  std::printf("tiny VAE decode [16,3,6,10] -> %s: CUDA vs CPU rel L2 %.3g\n", shape_str(got.shape()).c_str(), e);
  EXPECT_LT(e, 3e-2);
  Tensor got2 = vae->decode(z, {}, 2);  // chunked differently: same video within bf16
  EXPECT_LT(rel_err(got2, want), 3e-2);
}

}  // namespace
