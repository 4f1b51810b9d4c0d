// The tiny Flux VAE on CUDA against the CPU (its ops one by one are in the op suite,
// tests/backend): decode and encode of the embedded tiny weights. Tolerance: relative L2
// 3e-2 (about 40 bf16 layers), as for the Wan VAE.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "cuda_test_util.h"
#include "models/vae/flux_vae_codec.h"
#include "models/vae/flux_vae_tiny.h"

using namespace raylight;
using namespace raylight::test;

namespace {

using CudaFluxVae = GpuTest;

TEST_F(CudaFluxVae, TinyDecodeMatchesCpu) {
  auto cpu_be = make_cpu_backend();
  auto ref = make_flux_vae_codec(flux_vae_tiny_weights(), *cpu_be, "tiny");
  auto vae = make_flux_vae_codec(flux_vae_tiny_weights(), *gpu, "tiny");
  Tensor z = gaussian_noise({16, 6, 10}, next_seed());
  Tensor want = ref->decode(z), got = vae->decode(z);
  const double e = rel_err(got, want);
  std::printf("tiny Flux VAE decode [16,6,10] -> %s: CUDA vs CPU rel L2 %.3g\n", shape_str(got.shape()).c_str(), e);
  EXPECT_LT(e, 3e-2);
}

TEST_F(CudaFluxVae, TinyEncodeMatchesCpu) {
  auto cpu_be = make_cpu_backend();
  auto ref = make_flux_vae_codec(flux_vae_tiny_weights(), *cpu_be, "tiny");
  auto vae = make_flux_vae_codec(flux_vae_tiny_weights(), *gpu, "tiny");
  Tensor x = gaussian_noise({3, 48, 80}, next_seed());
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = std::max(-1.0f, std::min(1.0f, 0.5f * x.f32()[i]));
  Tensor want = ref->encode(x), got = vae->encode(x);
  const double e = rel_err(got, want);
  std::printf("tiny Flux VAE encode [3,48,80] -> %s: CUDA vs CPU rel L2 %.3g\n", shape_str(got.shape()).c_str(), e);
  EXPECT_LT(e, 3e-2);
}

}  // namespace
