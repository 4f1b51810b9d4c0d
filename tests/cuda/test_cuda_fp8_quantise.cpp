// The quantisation in front of fp8 attention (backend/cuda/fp8_quantise.h), called directly
// and held to the host bit for bit: the rotation (backend/fp8_rotation.h's fp8_rotate_head,
// whose butterfly order the kernels keep however they spread a head over lanes), the amax
// from the device's column sums, and every e4m3 code from the device's scale. Only the sums
// (chunked fp32 sums, against double here) and the scale's fast-math division get a
// tolerance. Shapes cover every rotated head size (16 to 256), an unrotated one (48), rows
// and C that are no multiple of a block's, a partly valid key range, and an infinite key.
// (The op suite's attention_fp8 cases hold the whole fp8 path to the CPU emulation, but at
// 5e-2 on the output, which a wrong code here and there would pass.)
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cuda/fp8_quantise.h"
#include "backend/fp8_rotation.h"
#include "core/dtype.h"
#include "cuda_test_util.h"

using namespace raylight;
using namespace raylight::test;

namespace {

struct Case {
  int64_t Lq, Lk, valid, H, D;
  bool inf_key = false;  // k's row 0 holds an infinity: its scale must fall back to 1
};

std::string name(const Case& c) {
  return "Lq " + std::to_string(c.Lq) + " Lk " + std::to_string(c.Lk) + " valid " + std::to_string(c.valid) + " H " +
         std::to_string(c.H) + " D " + std::to_string(c.D) + (c.inf_key ? " inf key" : "");
}

template <typename T>
struct DeviceBuffer {
  T* p = nullptr;
  explicit DeviceBuffer(size_t n) { EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(T)), cudaSuccess); }
  ~DeviceBuffer() { cudaFree(p); }
};

// bf16 inputs [rows, C]: normal values, channel 3 of every head 16x larger (an outlier the
// rotation spreads), plus per-channel offsets where `offsets` (what smoothing removes).
std::vector<uint16_t> inputs(int64_t rows, int64_t C, int64_t D, bool offsets, std::mt19937& rng) {
  std::normal_distribution<float> n;
  std::vector<uint16_t> x(static_cast<size_t>(rows * C));
  for (int64_t i = 0; i < rows * C; ++i) {
    const int64_t c = i % C, d = c % D;
    float v = n(rng) * (d == 3 ? 16.0f : 1.0f);
    if (offsets) v += 0.25f * float(d % 7) - 0.5f;
    x[i] = f32_to_bf16(v);
  }
  return x;
}

struct Operand {
  int64_t rows, stat_rows;
  bool smooth, rotate;
  std::vector<uint16_t> x;
};

// Runs quantise_fp8_operands on three operands (q, k, v as fp8 attention passes them) and
// checks each against the host.
void check(const Case& cs) {
  SCOPED_TRACE(name(cs));
  const int64_t C = cs.H * cs.D, D = cs.D;
  const bool rotate = fp8_rotates(D);
  std::mt19937 rng(static_cast<uint32_t>(next_seed()));
  Operand ops[3] = {{cs.Lq, cs.Lq, false, rotate, inputs(cs.Lq, C, D, false, rng)},
                    {cs.Lk, cs.valid, true, rotate, inputs(cs.Lk, C, D, true, rng)},
                    {cs.Lk, cs.valid, true, false, inputs(cs.Lk, C, D, true, rng)}};
  if (cs.inf_key) ops[1].x[5] = f32_to_bf16(std::numeric_limits<float>::infinity());

  DeviceBuffer<float> sums(3 * C), scales(16), amax(4),
      work(cuda::fp8_quantise_workspace_floats(3, C, std::max(cs.Lq, cs.valid)));
  std::vector<std::unique_ptr<DeviceBuffer<uint16_t>>> xs;
  std::vector<std::unique_ptr<DeviceBuffer<uint8_t>>> ys;
  cuda::Fp8Operand dev[3];
  for (int i = 0; i < 3; ++i) {
    const Operand& o = ops[i];
    xs.push_back(std::make_unique<DeviceBuffer<uint16_t>>(o.x.size()));
    ys.push_back(std::make_unique<DeviceBuffer<uint8_t>>(o.x.size()));
    ASSERT_EQ(cudaMemcpy(xs[i]->p, o.x.data(), o.x.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemset(ys[i]->p, 0xAA, o.x.size()), cudaSuccess);  // unwritten codes show
    dev[i] = {reinterpret_cast<const cuda::bf16*>(xs[i]->p), o.rows, o.stat_rows, o.smooth, o.rotate, ys[i]->p,
              sums.p + i * C, scales.p + 4 * i, scales.p + 4 * i + 1};
  }
  cuda::quantise_fp8_operands(dev, 3, C, D, amax.p, work.p, nullptr);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> sum(3 * C), sc(16);
  ASSERT_EQ(cudaMemcpy(sum.data(), sums.p, sum.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(sc.data(), scales.p, sc.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);

  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("operand " + std::to_string(i));
    const Operand& o = ops[i];
    std::vector<float> y(o.x.size());
    for (size_t e = 0; e < y.size(); ++e) y[e] = bf16_to_f32(o.x[e]);
    if (o.rotate)
      for (size_t h0 = 0; h0 < y.size(); h0 += static_cast<size_t>(D)) fp8_rotate_head(y.data() + h0, D);
    // Column sums over the stat rows (fp32 in chunks on the device; double here).
    const float* dsum = sum.data() + i * C;
    int bad_sums = 0;
    for (int64_t c = 0; c < C; ++c) {
      double s = 0, mag = 0;
      for (int64_t r = 0; r < o.stat_rows; ++r) {
        s += y[r * C + c];
        mag += std::fabs(y[r * C + c]);
      }
      if (std::isfinite(s) && !(std::fabs(dsum[c] - s) <= 1e-5 * mag + 1e-30)) ++bad_sums;
    }
    EXPECT_EQ(bad_sums, 0) << "column sums off";
    // amax of (value - mean), mean as the device forms it from its sum.
    const float inv_n = o.smooth ? 1.0f / static_cast<float>(o.stat_rows) : 0.0f;
    std::vector<float> mean(C);
    for (int64_t c = 0; c < C; ++c) mean[c] = dsum[c] * inv_n;
    float a = 0;
    for (int64_t r = 0; r < o.stat_rows; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float d = y[r * C + c] - mean[c];
        a = std::isfinite(d) ? std::max(a, std::fabs(d)) : std::numeric_limits<float>::infinity();
      }
    const float scale = sc[4 * i + 1], descale = sc[4 * i];
    const bool finite = std::isfinite(a);
    EXPECT_EQ(finite, !(cs.inf_key && i == 1));
    if (finite && a > 0) {
      EXPECT_NEAR(scale, 448.0f / a, 1e-6 * (448.0f / a));
    } else {  // no amax (one stat row, all centred to 0) or an infinite one
      EXPECT_EQ(scale, 1.0f);
    }
    EXPECT_NEAR(descale * scale, 1.0f, 1e-6);
    if (!finite) continue;  // codes of infinities and NaNs: no arithmetic to repeat
    std::vector<uint8_t> got(o.x.size());
    ASSERT_EQ(cudaMemcpy(got.data(), ys[i]->p, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    int64_t wrong = 0, first = -1;
    for (int64_t e = 0; e < static_cast<int64_t>(got.size()); ++e) {
      const uint8_t want = f32_to_e4m3((y[e] - mean[e % C]) * scale);
      if (got[e] != want && wrong++ == 0) first = e;
    }
    EXPECT_EQ(wrong, 0) << "codes differ from the host's, first at row " << first / C << " column " << first % C;
  }
}

using Fp8QuantiseTest = GpuTest;

TEST_F(Fp8QuantiseTest, CodesMatchTheHostBitForBit) {
  const Case cases[] = {
      {203, 333, 257, 5, 128},    // C 640: no multiple of the 1,024 columns an unrotated warp covers
      {77, 100, 77, 3, 64},       {150, 150, 150, 3, 256},  {40, 37, 1, 5, 16},  // D 16: half a thread past C
      {64, 64, 64, 2, 32},        {50, 50, 20, 3, 48},      // 48: unrotated, C 144 (a thread holds 16 of 32)
      {2000, 2100, 1999, 40, 128},  // Wan's C 5,120: several rows per thread and per statistics chunk
      {90, 120, 100, 4, 128, true}};
  for (const Case& c : cases) check(c);
}

}  // namespace
