// Whole Wan forwards on the GPU against the CPU: the tiny fixtures (T2V, I2V, scaled fp8)
// against their float64 golden outputs, and a mid-size random model (head_dim 128, several
// blocks) against the CPU backend. The GPU keeps activations in bf16 (2^-9 relative
// rounding per op) through every block, so errors compound to about 1e-2 relative L2;
// the bound is 3e-2 (measured: 6e-3 tiny, 7.5e-3 mid-size). The fp8 path (weights kept as
// fp8 codes on the device) is compared with the same checkpoint dequantised to bf16 at load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "cuda_test_util.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/wan/wan_tiny.h"
#include "parallel/checkpoint_weights.h"
#include "pipeline/model_loader.h"
#include "../wan_cases.h"
#include "../part_loaders.h"

using namespace raylight;
using namespace raylight::test;

namespace {

WanInputs case_inputs(const std::string& case_file) {
  return wan_case_inputs(*SafetensorsFile::open(fixture(case_file)));
}

Tensor golden(const std::string& case_file) {
  return SafetensorsFile::open(fixture(case_file))->tensor("velocity").to_f32();
}

Tensor gpu_forward(const std::string& model_file, const WanInputs& in, bool keep_fp8 = true, bool fp8_gemm = true,
                   WeightPlacement placement = {}) {
  LoadedModel wan = load_model(std::make_unique<CheckpointWeights>(Checkpoint::open(fixture(model_file))),
                           poisoned_backend(keep_fp8, fp8_gemm), {}, placement);
  if (wan.weights->stored_dtype("blocks.0.ffn.0.weight") == DType::F8E4M3)
    EXPECT_EQ(wan.weights->get("blocks.0.ffn.0.weight").dtype(), keep_fp8 ? DType::F8E4M3 : DType::BF16);
  return wan_of(wan).forward(in);
}

struct CudaWan : ::testing::Test {
  void SetUp() override {
    if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
  }
};

TEST_F(CudaWan, TinyTextToVideoMatchesGolden) {
  const double e = rel_err(gpu_forward("wan_tiny_t2v.safetensors", case_inputs("wan_tiny_t2v_case.safetensors")),
                           golden("wan_tiny_t2v_case.safetensors"));
  std::printf("tiny t2v: GPU vs float64 golden, relative L2 error %.3g\n", e);
  EXPECT_LT(e, 3e-2);
}

TEST_F(CudaWan, TinyImageToVideoMatchesGolden) {
  const double e = rel_err(gpu_forward("wan_tiny_i2v.safetensors", case_inputs("wan_tiny_i2v_case.safetensors")),
                           golden("wan_tiny_i2v_case.safetensors"));
  std::printf("tiny i2v: GPU vs float64 golden, relative L2 error %.3g\n", e);
  EXPECT_LT(e, 3e-2);
}

// Issue 16/17: the FLF2V forward (img_emb.emb_pos) and the Wan 2.2 I2V one (y without CLIP).
TEST_F(CudaWan, TinyFirstLastFrameAndWan22ImageToVideoMatchGolden) {
  for (const char* name : {"wan_tiny_flf2v", "wan_tiny_i2v22"}) {
    const std::string model = std::string(name) + ".safetensors", c = std::string(name) + "_case.safetensors";
    const double e = rel_err(gpu_forward(model, case_inputs(c)), golden(c));
    std::printf("%s: GPU vs float64 golden, relative L2 error %.3g\n", name, e);
    EXPECT_LT(e, 3e-2) << name;
  }
}

TEST_F(CudaWan, Fp8PathMatchesDequantisedBf16) {
  const WanInputs in = case_inputs("wan_tiny_t2v_scaled_fp8_case.safetensors");
  Tensor fp8 = gpu_forward("wan_tiny_t2v_scaled_fp8.safetensors", in, true, true);
  Tensor fp8_dequant_gemm = gpu_forward("wan_tiny_t2v_scaled_fp8.safetensors", in, true, false);
  Tensor bf16 = gpu_forward("wan_tiny_t2v_scaled_fp8.safetensors", in, false, false);
  const Tensor ref = golden("wan_tiny_t2v_scaled_fp8_case.safetensors");
  const double e_fp8 = rel_err(fp8, bf16), e_dq = rel_err(fp8_dequant_gemm, bf16), e_ref = rel_err(bf16, ref);
  // 0 for the first two means the product ran on bf16 weights dequantised from the fp8
  // codes (bit-identical to dequantising at load): cuBLASLt 13.0 refused every fp8 candidate
  // in our runs (docs/benchmarks.md), so "fp8 GEMM" falls back.
  std::printf("scaled fp8: fp8 weights with fp8 GEMM requested vs bf16 %.3g, dequantising GEMM vs bf16 %.3g, "
              "bf16 vs golden %.3g\n", e_fp8, e_dq, e_ref);
  EXPECT_LT(e_fp8, 6e-2);
  EXPECT_LT(e_dq, 1e-2);
  EXPECT_LT(e_ref, 3e-2);
}

// Random weights scaled like a trained network (the tiny model's recipe) at head_dim 128.
std::unique_ptr<MemoryWeights> mid_weights(const WanConfig& c) {
  auto w = std::make_unique<MemoryWeights>();
  uint64_t seed = 99;
  for (const auto& [name, shape] : wan_expected_tensors(c)) {
    Tensor t = gaussian_noise(shape, ++seed);
    const bool matrix = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0 && shape.size() >= 2;
    const bool norm = !matrix && name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos;
    const double scale = matrix ? 1.0 / std::sqrt(double(shape_numel(shape) / shape[0])) : 0.1;
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float((norm ? 1.0 : 0.0) + scale * t.f32()[i]);
    w->put(name, t);
  }
  w->set_metadata({{"raylight.num_heads", std::to_string(c.num_heads)}});
  return w;
}

// Device shards (one rank: the shards are the tensors), host shards uploaded per block,
// and offload slots streamed on the transfer stream all hand the same bytes to the same
// kernels as resident weights: the forwards must be bit-identical, two forwards in a row
// (the second reuses the slots after the wrap-around prefetch).
TEST_F(CudaWan, ShardedAndStreamedWeightsEqualResident) {
  for (const char* model : {"wan_tiny_t2v.safetensors", "wan_tiny_t2v_scaled_fp8.safetensors"}) {
    const std::string case_file = std::string(model).replace(std::string(model).find(".safetensors"), 12, "_case.safetensors");
    const WanInputs in = case_inputs(case_file);
    const Tensor resident = gpu_forward(model, in);
    for (WeightPlacement p : {WeightPlacement{true, false}, WeightPlacement{true, true}, WeightPlacement{false, true}}) {
      LoadedModel wan = load_model(std::make_unique<CheckpointWeights>(Checkpoint::open(fixture(model))),
                               poisoned_backend(), {}, p);
      for (int pass = 0; pass < 2; ++pass) {
        EXPECT_EQ(max_abs_diff(wan_of(wan).forward(in), resident), 0.0f) << model << " fsdp=" << p.fsdp << " offload=" << p.offload << " pass " << pass;
      }
    }
  }
}

TEST_F(CudaWan, MidSizeForwardMatchesCpu) {
  WanConfig c;
  c.dim = 512;
  c.num_heads = 4;
  c.ffn_dim = 1536;
  c.num_layers = 4;
  c.text_dim = 256;
  WanInputs in;
  in.latent = gaussian_noise({16, 5, 12, 20}, 7);
  in.context = gaussian_noise({40, c.text_dim}, 8);
  in.timestep = 731;
  LoadedModel cpu = load_model(mid_weights(c), make_cpu_backend());
  LoadedModel gpu = load_model(mid_weights(c), poisoned_backend());
  const Tensor want = wan_of(cpu).forward(in);
  const double e = rel_err(wan_of(gpu).forward(in), want);
  std::printf("mid-size (dim 512, 4 heads of 128, 4 layers, 300 tokens): GPU vs CPU relative L2 error %.3g\n", e);
  EXPECT_LT(e, 3e-2);
}

}  // namespace
