// Per-row activation scales for fp8 products (CudaOptions::fp8_row_scales, opt-in): the one-pass row
// quantisation against the host's arithmetic, and products over activations whose rows span
// 2^16 in magnitude, where one scale per tensor leaves the small rows in e4m3's subnormals and
// a scale per row does not. A product given its input's absmax (a norm's output) keeps one scale
// per tensor (tests/cuda/test_cuda_norm_absmax.cpp).
#include <gtest/gtest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cuda/kernels.h"
#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

struct CudaFp8RowScales : GpuTest {
  void SetUp() override {
    GpuTest::SetUp();
    gpu = poisoned_backend(true, true, false, /*fp8_row_scales=*/true);
  }
};

TEST_F(CudaFp8RowScales, RowQuantisationIsTheHostsArithmetic) {
  for (const int64_t cols : {int64_t(1536), int64_t(77)}) {  // vector loads, and a row width that is not a multiple of 8
    const int64_t rows = 64;
    Tensor x = rand_bf16({rows, cols});
    float* p = x.f32();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) p[r * cols + c] = bf16_to_f32(f32_to_bf16(p[r * cols + c] * std::ldexp(1.0f, int(r % 13) - 6)));
    for (int64_t c = 0; c < cols; ++c) p[5 * cols + c] = 0.0f;                    // a zero row
    p[7 * cols + 3] = std::numeric_limits<float>::quiet_NaN();                     // NaN skipped in the max
    std::vector<uint16_t> bits(size_t(rows * cols));
    for (int64_t i = 0; i < rows * cols; ++i) bits[i] = f32_to_bf16(p[i]);
    void *dx = nullptr, *dy = nullptr, *ds = nullptr;
    ASSERT_EQ(cudaMalloc(&dx, bits.size() * 2), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&dy, bits.size()), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&ds, rows * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(dx, bits.data(), bits.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    cuda::quantize_rows_e4m3(static_cast<const cuda::bf16*>(dx), rows, cols, static_cast<uint8_t*>(dy),
                             static_cast<float*>(ds), nullptr);
    std::vector<uint8_t> codes(bits.size());
    std::vector<float> descale(rows);
    ASSERT_EQ(cudaMemcpy(codes.data(), dy, codes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(descale.data(), ds, rows * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(dx);
    cudaFree(dy);
    cudaFree(ds);
    int64_t edges = 0;
    for (int64_t r = 0; r < rows; ++r) {
      float amax = 0.0f;
      for (int64_t c = 0; c < cols; ++c) amax = std::fmax(amax, std::fabs(p[r * cols + c]));  // fmax skips NaN
      amax = std::fmax(amax, 1e-12f);
      EXPECT_NEAR(descale[r], amax / 448.0f, 2e-7 * amax / 448.0f) << "row " << r << " of " << cols;
      for (int64_t c = 0; c < cols; ++c) {
        const float v = p[r * cols + c];
        const uint8_t got = codes[r * cols + c];
        if (std::isnan(v)) {
          EXPECT_EQ(got & 0x7f, 0x7f) << "NaN stays NaN";
          continue;
        }
        // The device's 448 / amax is fast math's division (2 ulp), so a scaled value within a
        // few ulp of a rounding edge may land on either side of it: bf16 inputs over a bf16
        // amax sit on e4m3's ties often. Anywhere else the code is the host's exactly.
        const double x = double(v) * 448.0 / double(amax);
        const uint8_t below = f32_to_e4m3(float(x * (1.0 - 1e-6))), above = f32_to_e4m3(float(x * (1.0 + 1e-6)));
        if (below == above) {
          EXPECT_EQ(got, below) << "row " << r << " col " << c << " of " << cols;
        } else {
          ++edges;
          EXPECT_TRUE(got == below || got == above) << "row " << r << " col " << c << " of " << cols;
        }
      }
    }
    EXPECT_LT(edges, rows * cols / 10) << "the edge test must leave most codes exact";
  }
}

// The worst row's relative L2 error of the product of x, against the CPU's.
double worst_row_error(CudaBackend& be, const Tensor& x, const Fp8Weight& w, const Tensor& bias, const Tensor& ref) {
  const Tensor got = be.download(be.linear(be.upload(x), be.weight(w.codes, w.scale), be.upload(bias)));
  const int64_t rows = got.dim(0), n = got.dim(1);
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double num = 0, den = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double a = got.f32()[r * n + c], b = ref.f32()[r * n + c];
      if (!std::isfinite(a)) return 1e9;
      num += (a - b) * (a - b);
      den += b * b;
    }
    worst = std::max(worst, std::sqrt(num / std::max(den, 1e-30)));
  }
  return worst;
}

TEST_F(CudaFp8RowScales, RowsOfEverySizeKeepTheirPrecision) {
  const int64_t M = 512, K = 1024, N = 768;
  Tensor x = rand_bf16({M, K});
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < K; ++c)
      x.f32()[r * K + c] = bf16_to_f32(f32_to_bf16(x.f32()[r * K + c] * std::ldexp(1.0f, int(r % 17) - 8)));
  const Fp8Weight w = fp8_weight(rand_bf16({N, K}, 1.0f / std::sqrt(float(K))));
  const Tensor bias = Tensor::zeros({N});  // no bias: the small rows' products are all small
  const Tensor ref = cpu_ref().linear(x, cpu_ref().weight(w.codes, w.scale), bias);
  const double per_row = worst_row_error(*gpu, x, w, bias, ref);
  auto per_tensor_be = poisoned_backend();  // one scale per tensor (the default)
  const double per_tensor = worst_row_error(*per_tensor_be, x, w, bias, ref);
  // e4m3 rounds each value by up to 1/16: a row's product error is a few percent at most.
  EXPECT_LT(per_row, 6e-2);
  // One scale for all rows puts the smallest (2^-16 of the largest) under e4m3's subnormal step.
  EXPECT_GT(per_tensor, 2 * per_row) << "per row " << per_row << ", per tensor " << per_tensor;
}

TEST_F(CudaFp8RowScales, AGivenAbsmaxKeepsOneScalePerTensor) {
  // The norms' absmax path: given, the product is the per-tensor one bit for bit.
  const int64_t M = 256, K = 1024, N = 512;
  const Tensor x = rand_bf16({M, K});
  const Fp8Weight w = fp8_weight(rand_bf16({N, K}, 1.0f / std::sqrt(float(K))));
  float amax = 0.0f;
  for (int64_t i = 0; i < x.numel(); ++i) amax = std::fmax(amax, std::fabs(x.f32()[i]));
  Tensor a = Tensor::zeros({1});
  a.f32()[0] = amax;
  auto per_tensor_be = poisoned_backend();
  const Tensor given = down(gpu->linear(up(x), gpu->weight(w.codes, w.scale), {}, gpu->upload_f32(a)));
  const Tensor tensor = per_tensor_be->download(per_tensor_be->linear(per_tensor_be->upload(x),
                                                                      per_tensor_be->weight(w.codes, w.scale), {}));
  const Tensor rows = down(gpu->linear(up(x), gpu->weight(w.codes, w.scale), {}));
  EXPECT_TRUE(same_bits(given, tensor));
  EXPECT_FALSE(same_bits(rows, tensor)) << "without an absmax the rows get their own scales";
}

}  // namespace
