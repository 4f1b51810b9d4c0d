// LoRAs on the GPU: the fp8 side product (bf16 factors, two small products and an add beside
// the fp8 GEMM) and the merged bf16 copy against the CPU reference on every placement,
// removing a LoRA restores the base bit for bit on the device, and the side term of a
// precise (fp32) input stays fp32. Bounds as the other whole-model GPU tests: 3e-2 rel. L2.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>

#include "cuda_test_util.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "parallel/lora/lora_linear.h"
#include "pipeline/model_loader.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

LoraOptions side_lora(bool merge) {
  LoraOptions o;
  o.files = {{fixture("lora_wan_side.safetensors"), 0.8}};
  o.merge_fp8 = merge;
  return o;
}

Tensor wan_forward(LoadedModel& m) {
  auto c = SafetensorsFile::open(fixture("wan_tiny_t2v_case.safetensors"));
  const Tensor latent = c->tensor("latent").to_f32();
  const Conditioning cond = m.spec->check_conditioning({{"context", c->tensor("context").to_f32()}}, latent.shape());
  return m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(cond));
}

LoadedModel load(std::unique_ptr<Backend> be, WeightPlacement p) {
  return load_model(open_store(fixture("wan_tiny_t2v_scaled_fp8.safetensors"), PartKind::Denoiser), std::move(be), {},
                    p, "fp8");
}

struct CudaLora : ::testing::Test {
  void SetUp() override {
    if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  }
};

}  // namespace

TEST_F(CudaLora, SideProductAndMergedCopyMatchTheCpuOnEveryPlacement) {
  for (bool merge : {false, true}) {
    WeightPlacement p;
    p.loras = side_lora(merge);
    LoadedModel cpu_model = load(make_cpu_backend(), p);
    const Tensor want = wan_forward(cpu_model);
    for (int placement = 0; placement < 3; ++placement) {
      WeightPlacement q = p;
      q.fsdp = placement == 1;
      q.offload = placement == 2;
      LoadedModel gpu = load(poisoned_backend(), q);
      const double e = rel_err(wan_forward(gpu), want);
      std::printf("LoRA %s, %s: GPU vs CPU relative L2 %.3g\n", merge ? "merged bf16" : "fp8 side product",
                  placement == 0 ? "resident" : placement == 1 ? "fsdp" : "offload", e);
      EXPECT_LT(e, 3e-2);
    }
  }
}

TEST_F(CudaLora, RemovingRestoresTheBaseBitForBitOnTheDevice) {
  LoadedModel m = load(poisoned_backend(), {});
  const Tensor base = wan_forward(m);
  apply_loras(m, side_lora(false));
  const Tensor with = wan_forward(m);
  EXPECT_GT(max_abs(with, base), 1e-3);
  apply_loras(m, {});
  const Tensor removed = wan_forward(m);
  EXPECT_EQ(std::memcmp(removed.raw(), base.raw(), base.nbytes()), 0);
}

TEST_F(CudaLora, APreciseInputKeepsTheSideTermInFp32) {
  auto gpu = poisoned_backend();
  const Tensor x = rand_bf16({7, 64}), down = rand_bf16({4, 64}, 0.1f), up = rand_bf16({48, 4}, 0.1f);
  const Tensor y = rand_bf16({7, 48});
  auto run = [&](Backend& be) {
    const WeightStore::LowRank lr{be.weight(down, 1.0f), be.weight(up, 1.0f)};
    const Tensor out = add_low_rank(be, lr, be.to_f32(be.upload(x)), be.to_f32(be.upload(y)));
    EXPECT_EQ(out.dtype(), DType::F32);
    return be.download(out);
  };
  const double e = rel_err(run(*gpu), run(cpu_ref()));
  std::printf("fp32 side term, GPU vs CPU: relative L2 %.3g\n", e);
  EXPECT_LT(e, 1e-4);  // fp32 products both sides; only the summation order differs
}
