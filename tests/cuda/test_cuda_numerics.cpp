// GPU numerics at the reference's own bf16 error (issue 24). The fixture holds, for a
// mid-size Wan config (dim 512, 4 heads of 128, 3 layers, 3,510 tokens), the official
// Wan 2.1 model code's output in fp32 (the reference) and the error of the same code run as
// its users run it, bf16 weights under autocast(bf16): that is what rounding the
// reference's own operands to bf16 costs. bench/wan_numerics.py made it on the GPU machine
// from weights and inputs of the engine's documented noise generator, rebuilt here. The CPU
// backend must match the reference (fp32 throughout); the GPU forward must stay within
// 1.2x of the official bf16 error.
#include <gtest/gtest.h>

#include <cstdio>

#include "cuda_test_util.h"
#include "io/safetensors.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "../part_loaders.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

WanConfig mid_config() {
  WanConfig c;
  c.dim = 512;
  c.num_heads = 4;
  c.ffn_dim = 2048;
  c.num_layers = 3;
  return c;
}

// The generator's weights rounded to bf16, as the checkpoint the official code ran.
std::unique_ptr<MemoryWeights> mid_weights() {
  const WanConfig c = mid_config();
  std::unique_ptr<MemoryWeights> raw = wan_random_weights(c);
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, t] : raw->tensors()) w->put(name, round_bf16(t));
  w->set_metadata({{"raylight.num_heads", std::to_string(c.num_heads)}});
  return w;
}

WanInputs mid_inputs() {
  WanInputs in;
  in.latent = gaussian_noise({16, 10, 26, 54}, 0x6E750001ull);
  Tensor context = gaussian_noise({200, 4096}, 0x6E750002ull);
  for (int64_t i = 0; i < context.numel(); ++i) context.f32()[i] = float(0.2 * double(context.f32()[i]));
  in.context = context;
  in.timestep = 500;
  return in;
}

struct CudaNumerics : ::testing::Test {
  void SetUp() override {
    if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  }
};

TEST_F(CudaNumerics, MidConfigWithinTheReferencesOwnBf16Error) {
  auto fx = SafetensorsFile::open(fixture("wan_numerics_mid.safetensors"));
  const Tensor reference = fx->tensor("reference").to_f32();
  const double official_bf16 = fx->tensor("official_bf16_rel_l2").to_f32().f32()[0];
  const WanInputs in = mid_inputs();

  LoadedModel cpu = load_model(mid_weights(), make_cpu_backend());
  const double e_cpu = rel_err(wan_of(cpu).forward(in), reference);
  LoadedModel gpu = load_model(mid_weights(), poisoned_backend());
  const double e_gpu = rel_err(wan_of(gpu).forward(in), reference);
  std::printf("mid config vs the official code in fp32: CPU %.3g, GPU %.3g, official code in bf16 %.3g (GPU/official "
              "%.2fx)\n", e_cpu, e_gpu, official_bf16, e_gpu / official_bf16);
  EXPECT_LT(e_cpu, 1e-4) << "the CPU backend is not the fp32 reference the bound assumes";
  EXPECT_LE(e_gpu, 1.2 * official_bf16);
}

}  // namespace
