// Helpers for the GPU tests: fresh random inputs (a new seed per call), bf16 rounding of
// host inputs so the CPU reference sees exactly what the GPU sees, and the relative L2
// error ||a - b|| / ||b|| with NaN (= an unwritten, poisoned element) counted as failure.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "sampling/noise.h"

namespace raylight::test {

// The CPU reference backend (operands checked like every backend's).
inline Backend& cpu_ref() {
  static std::unique_ptr<Backend> be = make_cpu_backend();
  return *be;
}

inline uint64_t next_seed() {
  static uint64_t s = 0x5eed0000ull ^ static_cast<uint64_t>(::testing::UnitTest::GetInstance()->random_seed());
  return ++s * 0x9E3779B97F4A7C15ull;
}

inline Tensor round_bf16(Tensor t) {
  Tensor c = t.to_f32().clone();
  float* p = c.f32();
  for (int64_t i = 0; i < c.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
  return c;
}

// Gaussian * scale + offset, already rounded to bf16.
inline Tensor rand_bf16(Shape s, float scale = 1.0f, float offset = 0.0f) {
  Tensor t = gaussian_noise(std::move(s), next_seed());
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = p[i] * scale + offset;
  return round_bf16(t);
}

inline double rel_err(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape()) return 1e9;
  double num = 0, den = 0;
  const float *a = got.f32(), *b = want.f32();
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (!std::isfinite(a[i])) return 1e9;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

inline double max_abs(const Tensor& got, const Tensor& want) {
  double m = 0;
  for (int64_t i = 0; i < got.numel(); ++i) {
    if (!std::isfinite(got.f32()[i])) return 1e9;
    m = std::max(m, std::fabs(double(got.f32()[i]) - want.f32()[i]));
  }
  return m;
}

inline std::unique_ptr<CudaBackend> poisoned_backend(bool keep_fp8 = true, bool fp8_gemm = true,
                                                     bool fp8_attention_codes = false, bool fp8_row_scales = false) {
  CudaOptions o;
  o.poison = true;
  o.keep_fp8 = keep_fp8;
  o.fp8_gemm = fp8_gemm;
  o.fp8_attention_codes = fp8_attention_codes;
  o.fp8_row_scales = fp8_row_scales;
  return make_cuda_backend(o);
}

// fp8 e4m3 codes of w / scale with the scale for N(0, 1/K) values (4.5 std representable).
struct Fp8Weight {
  Tensor codes;
  float scale;
};
inline Fp8Weight fp8_weight(const Tensor& w) {
  const float scale = 4.5f / std::sqrt(float(w.dim(1))) / 448.0f;
  Tensor t = w.clone();
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] /= scale;
  return {t.to_dtype(DType::F8E4M3), scale};
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A backend made with RAYLIGHT_GEMM_TUNE set to `tune` (read when its cuBLASLt state is made).
inline std::unique_ptr<CudaBackend> backend_with_tuning(bool tune) {
  const char* old = std::getenv("RAYLIGHT_GEMM_TUNE");
  const std::string saved = old ? old : "";
  setenv("RAYLIGHT_GEMM_TUNE", tune ? "1" : "0", 1);
  auto be = poisoned_backend();
  if (old) setenv("RAYLIGHT_GEMM_TUNE", saved.c_str(), 1);
  else unsetenv("RAYLIGHT_GEMM_TUNE");
  return be;
}

// The fixture every GPU test uses: a fresh poisoned backend, and a plain failure (not a
// skip) where no GPU is visible, since these tests only run on GPU machines.
struct GpuTest : ::testing::Test {
  void SetUp() override {
    if (!cuda_device_available()) GTEST_FAIL() << "no CUDA device: the gpu-labelled tests run on a GPU machine";
    gpu = poisoned_backend();
  }
  Tensor up(const Tensor& t) { return gpu->upload(t); }
  Tensor down(const Tensor& t) { return gpu->download(t); }
  std::unique_ptr<CudaBackend> gpu;
};

}  // namespace raylight::test
