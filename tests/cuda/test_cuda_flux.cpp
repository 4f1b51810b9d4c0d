// Whole Flux.1 forwards on the GPU against the float64 goldens (dev and schnell) and against
// the CPU backend on every placement: the joint text + image sequence, the per-stream
// weights, the split products and the column concat of the single blocks in bf16. Bound as
// for Wan (bf16 activations through every block): 3e-2 relative L2.
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_test_util.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "parallel/checkpoint_weights.h"
#include "pipeline/model_loader.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

Tensor flux_forward(std::unique_ptr<Backend> backend, const std::string& variant, WeightPlacement placement = {}) {
  LoadedModel m = load_model(
      std::make_unique<CheckpointWeights>(Checkpoint::open(fixture("flux_tiny_" + variant + ".safetensors"))),
      std::move(backend), {}, placement);
  auto c = SafetensorsFile::open(fixture("flux_tiny_" + variant + "_case.safetensors"));
  Conditioning cond{{"context", c->tensor("context").to_f32()}, {"pooled", c->tensor("pooled").to_f32()}};
  if (c->has("guidance")) cond["guidance"] = c->tensor("guidance").to_f32();
  const Tensor latent = c->tensor("latent").to_f32();
  return m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(m.spec->check_conditioning(cond, latent.shape())));
}

struct CudaFlux : ::testing::Test {
  void SetUp() override {
    if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  }
};

}  // namespace

TEST_F(CudaFlux, TinyDevAndSchnellMatchGoldens) {
  for (const char* variant : {"dev", "schnell"}) {
    const Tensor want = SafetensorsFile::open(fixture(std::string("flux_tiny_") + variant + "_case.safetensors"))
                            ->tensor("velocity")
                            .to_f32();
    const double e = rel_err(flux_forward(poisoned_backend(), variant), want);
    std::printf("tiny flux %s: GPU vs float64 golden, relative L2 error %.3g\n", variant, e);
    EXPECT_LT(e, 3e-2) << variant;
  }
}

TEST_F(CudaFlux, StreamedAndResidentWeightsAgree) {
  const Tensor resident = flux_forward(poisoned_backend(), "dev");
  EXPECT_EQ(max_abs(flux_forward(poisoned_backend(), "dev", {false, true, 0}), resident), 0.0) << "offload";
}
