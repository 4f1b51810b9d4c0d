// The fp32 products (kernels.h linear_f32) at the sizes a Wan 14B forward runs them: the
// head at 480p (32,760 rows x 5,120 -> 64) and the time projection (1 row, 5,120 -> 30,720),
// with bf16 and fp8 weights. x carries full fp32 bits, so a kernel that rounded it to bf16
// anywhere (~2e-3) would miss the bound by far; fp32 sums in another order stay near 1e-7.
// The reference sums in double on the host, over a spread of rows for the head. Each product
// is timed (median of 7; printed, not asserted: the op suite checks the small shapes).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

constexpr double kF32Product = 1e-5;

struct CudaLinearF32 : GpuTest {};

// Relative L2 error of rows `rows` of y against x w^T + b summed in double; w holds the
// values the device multiplies (fp8: code x scale, exact in fp32).
double error_on_rows(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                     const std::vector<int64_t>& rows) {
  const int64_t K = x.dim(1), N = w.dim(0);
  double num = 0, den = 0;
  for (int64_t m : rows)
    for (int64_t n = 0; n < N; ++n) {
      double s = b.f32()[n];
      for (int64_t k = 0; k < K; ++k) s += double(x.f32()[m * K + k]) * w.f32()[n * K + k];
      const double got = y.f32()[m * N + n];
      if (!std::isfinite(got)) return 1e9;
      num += (got - s) * (got - s);
      den += s * s;
    }
  return std::sqrt(num / std::max(den, 1e-30));
}

void check(CudaLinearF32& t, int64_t M, int64_t K, int64_t N, const std::vector<int64_t>& rows, const char* what) {
  CudaBackend& gpu = *t.gpu;
  const Tensor x = gaussian_noise({M, K}, next_seed());  // fp32 bits below bf16's precision
  const Tensor wb = rand_bf16({N, K}, 1.0f / std::sqrt(float(K)));
  const Tensor b = rand_bf16({N}, 0.1f);
  const Fp8Weight w8 = fp8_weight(wb);
  Tensor w8_values = w8.codes.to_f32();
  for (int64_t i = 0; i < w8_values.numel(); ++i) w8_values.f32()[i] *= w8.scale;
  const Tensor xd = gpu.upload_f32(x), bd = gpu.weight(b, 1.0f);
  const double flop = 2.0 * M * N * K;
  for (bool fp8 : {false, true}) {
    const Tensor wd = fp8 ? gpu.weight(w8.codes, w8.scale) : gpu.weight(wb, 1.0f);
    ASSERT_EQ(wd.dtype(), fp8 ? DType::F8E4M3 : DType::BF16);
    const Tensor y = gpu.linear(xd, wd, bd);
    ASSERT_EQ(y.dtype(), DType::F32);
    const double err = error_on_rows(t.down(y), x, fp8 ? w8_values : wb, b, rows);
    std::vector<double> ms;
    for (int i = 0; i < 7; ++i) ms.push_back(gpu.time_ms([&] { gpu.linear(xd, wd, bd); }));
    std::sort(ms.begin(), ms.end());
    std::printf("[ linear_f32 ] %s M=%lld K=%lld N=%lld, %s weight: %.3f ms (%.1f TFLOP/s), error %.2e\n", what,
                (long long)M, (long long)K, (long long)N, fp8 ? "fp8" : "bf16", ms[3], flop / (ms[3] * 1e-3) / 1e12,
                err);
    EXPECT_LT(err, kF32Product) << what << (fp8 ? ", fp8 weight" : ", bf16 weight");
  }
}

TEST_F(CudaLinearF32, WanHeadAt480p) {
  const int64_t M = 32760;
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 192; ++i) rows.push_back(i * (M - 1) / 191);  // first, last and between
  check(*this, M, 5120, 64, rows, "head");
}

TEST_F(CudaLinearF32, WanTimeProjection) { check(*this, 1, 5120, 30720, {0}, "time projection"); }

}  // namespace
