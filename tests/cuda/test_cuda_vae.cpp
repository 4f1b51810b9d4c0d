// The tiny Wan VAE's decode on CUDA against the CPU (its ops one by one are in the op suite,
// tests/backend). Tolerance: relative L2 3e-2 for the whole decode (30-odd bf16 layers).
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_test_util.h"
#include "models/vae/wan_vae.h"
#include "parallel/weight_store.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

using CudaVae = GpuTest;

TEST_F(CudaVae, TinyVaeDecodeMatchesCpu) {
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
