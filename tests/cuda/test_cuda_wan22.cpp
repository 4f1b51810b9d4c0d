// Wan 2.2 on the GPU against the CPU: the tiny Wan 2.2 VAE (its level shortcuts run as a
// strided conv with a constant weight, a 0/1 selection conv and the DiT's unpatchify) decode
// and encode, its tiled decode, and the tiny TI2V DiT with a conditioned first frame (per-token
// timesteps: adaLN and the gated residual per run of rows). Tolerance as the Wan tests:
// relative L2 3e-2 (bf16 activations through every layer).
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_test_util.h"
#include "models/common/latent_tiles.h"
#include "models/registry.h"
#include "models/vae/wan22_vae.h"
#include "models/vae/wan22_vae_tiny.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

using CudaWan22 = GpuTest;

TEST_F(CudaWan22, TinyVaeDecodeEncodeAndTilesMatchCpu) {
  auto cpu_be = make_cpu_backend();
  auto ref = Wan22Vae::from_weights(wan22_vae_tiny_weights(), *cpu_be, "tiny");
  auto vae = Wan22Vae::from_weights(wan22_vae_tiny_weights(), *gpu, "tiny");
  const Tensor z = gaussian_noise({48, 3, 4, 6}, next_seed());
  const double d = rel_err(vae->decode(z), ref->decode(z));
  const Tensor video = ref->decode(z);
  const double e = rel_err(vae->encode(video), ref->encode(video));
  std::printf("tiny Wan 2.2 VAE: decode %.3g, encode %.3g relative L2 (CUDA vs CPU)\n", d, e);
  EXPECT_LT(d, 3e-2);
  EXPECT_LT(e, 3e-2);
  auto codec = make_latent_codec(std::unique_ptr<WeightStore>(wan22_vae_tiny_weights()), *gpu, "tiny");
  const TilePlan p = plan_tiles(codec->tiling(), 4, 6, 2, 3);
  EXPECT_LT(rel_err(decode_tiles(*codec, z, p), video), 3e-2);
}

TEST_F(CudaWan22, TinyTi2vForwardWithAFirstFrameMatchesCpu) {
  WanInputs in;
  in.latent = gaussian_noise({48, 3, 4, 6}, next_seed());
  in.first_frame = gaussian_noise({48, 1, 4, 6}, next_seed());
  in.context = gaussian_noise({9, 64}, next_seed());
  in.timestep = 700;
  LoadedModel cpu = load_model(wan_tiny_ti2v_weights(), make_cpu_backend());
  LoadedModel gpu = load_model(wan_tiny_ti2v_weights(), poisoned_backend());
  const double e = rel_err(wan_of(gpu).forward(in), wan_of(cpu).forward(in));
  std::printf("tiny TI2V forward with a first frame: GPU vs CPU relative L2 %.3g\n", e);
  EXPECT_LT(e, 3e-2);
}

}  // namespace
