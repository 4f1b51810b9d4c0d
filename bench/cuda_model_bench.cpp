// Text encoder and VAE on one GPU at real sizes with random weights: time and peak memory
// of a Wan VAE decode (480x832x81, optionally 720x1280x81 and a profiled run) and of a
// umT5-XXL-shaped encode of 512 tokens. A measurement, not a test: it asserts nothing.
//   raylight_cuda_bench [--vae] [--umt5] [--profile] [--720p] [--conv-probe]
//   (no flags: --vae --umt5)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/video_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "models/t5/umt5_config.h"
#include "models/t5/umt5_encoder.h"
#include "models/vae/wan_vae.h"
#include "models/vae/wan_vae_config.h"
#include "parallel/weight_store.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

// --- measurements --------------------------------------------------------------------

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::unique_ptr<MemoryWeights> random_vae_weights(const WanVaeConfig& cfg) {
  auto w = std::make_unique<MemoryWeights>();
  uint64_t seed = 1;
  for (const auto& [name, shape] : wan_vae_expected_tensors(cfg)) {
    Tensor t = gaussian_noise(shape, ++seed);
    float* p = t.f32();
    const bool gamma = name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0;
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    const double scale = gamma ? 0.1 : weight ? 1.0 / std::sqrt(double(shape_numel(shape) / shape[0])) : 0.1;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = float((gamma ? 1.0 : 0.0) + scale * p[i]);
    w->put(name, t);
  }
  return w;
}

void bench_decode(CudaBackend& gpu, WanVae& vae, int64_t F, int64_t H, int64_t W, bool profile = false) {
  Tensor z = gaussian_noise({16, F, H, W}, 7);
  gpu.synchronize();
  gpu.set_profiling(profile);
  gpu.reset_profile();
  gpu.reset_peak();
  const double t0 = now_s();
  double last = t0;
  Tensor video = vae.decode(z, [&](int64_t done, int64_t total) {
    const double t = now_s();
    if (done == 1 || done == total || done % 5 == 0)
      std::printf("  latent frame %lld/%lld  %.2f s (this chunk %.2f s)\n", (long long)done, (long long)total, t - t0, t - last);
    std::fflush(stdout);
    last = t;
  });
  gpu.synchronize();
  const double s = now_s() - t0;
  if (profile) {
    const CudaProfile p = gpu.profile();
    std::printf("PROFILE (events around each op): conv3d + linear %.0f ms (%.1f TFLOP/s), attention %.0f ms, "
                "other %.0f ms\n",
                p.matmul_ms, p.matmul_flops / p.matmul_ms / 1e9, p.attention_ms, p.other_ms);
    gpu.set_profiling(false);
  }
  std::printf("BENCH wan-vae decode latent [16,%lld,%lld,%lld] -> video %s on %s: %.2f s, peak live %.2f GiB, "
              "peak reserved %.2f GiB\n",
              (long long)F, (long long)H, (long long)W, shape_str(video.shape()).c_str(), gpu.device_name().c_str(), s,
              gpu.peak_bytes() / 1073741824.0, gpu.peak_reserved_bytes() / 1073741824.0);
  std::fflush(stdout);
}

void bench_vae(bool profile, bool hd) {
  auto gpu = make_cuda_backend(CudaOptions{});
  WanVaeConfig cfg;  // z 16, base 96, mult 1 2 4 4
  auto vae = WanVae::from_weights(random_vae_weights(cfg), *gpu, "random real-size VAE");
  bench_decode(*gpu, *vae, 2, 60, 104);  // warm-up (plans, weights on the device)
  bench_decode(*gpu, *vae, 21, 60, 104);
  if (profile) bench_decode(*gpu, *vae, 21, 60, 104, true);
  if (hd) bench_decode(*gpu, *vae, 21, 90, 160);
}

void bench_umt5() {
  UMT5Config c;
  c.vocab = 1000, c.d_model = 4096, c.num_layers = 24, c.num_heads = 64, c.d_kv = 64, c.d_ff = 10240;
  c.names.embedding = "shared.weight";
  // bf16 weights: a 1M-value Gaussian pattern tiled (fast to make; only timing matters).
  std::vector<uint16_t> pattern(1 << 20);
  {
    Tensor g = gaussian_noise({int64_t(pattern.size())}, 3);
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = f32_to_bf16(g.f32()[i] * 0.02f);
  }
  auto w = std::make_unique<MemoryWeights>();
  for (const auto& [name, shape] : umt5_expected_tensors(c)) {
    Tensor t = Tensor::empty(shape, DType::BF16);
    uint16_t* p = t.data<uint16_t>();
    const bool norm = name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); i += int64_t(pattern.size())) {
      const int64_t n = std::min<int64_t>(pattern.size(), t.numel() - i);
      if (norm) for (int64_t j = 0; j < n; ++j) p[i + j] = f32_to_bf16(1.0f);
      else std::memcpy(p + i, pattern.data(), n * 2);
    }
    w->put(name, t);
  }
  auto gpu = make_cuda_backend(CudaOptions{});
  UMT5Encoder enc(std::move(w), *gpu);
  std::vector<int> ids(512);
  for (int i = 0; i < 512; ++i) ids[i] = (i * 37) % 1000;
  double t0 = now_s();
  enc.encode(ids);
  gpu->synchronize();
  std::printf("umt5 first encode (weights to the device): %.2f s\n", now_s() - t0);
  gpu->reset_peak();
  for (int r = 0; r < 3; ++r) {
    t0 = now_s();
    Tensor y = enc.encode(ids);
    gpu->synchronize();
    std::printf("BENCH umt5-xxl-shaped encode 512 tokens on %s: %.1f ms, peak live %.2f GiB, peak reserved %.2f GiB\n",
                gpu->device_name().c_str(), (now_s() - t0) * 1e3, gpu->peak_bytes() / 1073741824.0,
                gpu->peak_reserved_bytes() / 1073741824.0);
  }
}

// One conv3d of the decoder's widest stages, and its parts timed alone (one band of the
// im2col scratch; the band's product in both operand orders), so the slow part shows.
void bench_conv_probe() {
  std::unique_ptr<CudaBackend> gpu = make_cuda_backend(CudaOptions{});
  cuda::Gemm gemm(static_cast<cudaStream_t>(gpu->native_stream()));
  struct Case { int64_t C, Co, H, W, T, Tp; };
  for (const Case& c : {Case{96, 96, 480, 832, 4, 2}, Case{192, 192, 240, 416, 4, 2}, Case{384, 384, 60, 104, 1, 2}}) {
    Tensor x = gpu->random_weight({c.T, c.C, c.H, c.W}, DType::BF16, 0.f, 1.f, 1);
    Tensor past = gpu->random_weight({c.Tp, c.C, c.H, c.W}, DType::BF16, 0.f, 1.f, 2);
    Tensor w = gpu->random_weight({c.Co, c.C, 3, 3, 3}, DType::BF16, 0.f, 0.05f, 3);
    Tensor b = gpu->random_weight({c.Co}, DType::BF16, 0.f, 0.1f, 4);
    Backend::Conv3dSpec s;
    s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = 1;
    const double flops = 2.0 * c.T * c.H * c.W * c.Co * c.C * 27;
    gpu->conv3d(x, past, w, b, s);
    const double conv_ms = gpu->time_ms([&] { gpu->conv3d(x, past, w, b, s); });
    const int64_t K = c.C * 27, band = std::min<int64_t>(c.H, (int64_t(128) << 20) / K / c.W), P = band * c.W;
    Tensor col = gpu->random_weight({K, P}, DType::BF16, 0.f, 1.f, 5);
    Tensor colt = gpu->random_weight({P, K}, DType::BF16, 0.f, 1.f, 6);
    Tensor y = gpu->random_weight({c.Co, P}, DType::BF16, 0.f, 1.f, 7);
    cuda::Im2colGeom g{c.Tp, c.C, c.H, c.W, 3, 3, 3, 1, 1, 1, 0, 1, 1, c.H, c.W};
    auto* bx = static_cast<const __nv_bfloat16*>(x.raw());
    auto* bpast = static_cast<const __nv_bfloat16*>(past.raw());
    auto* bcol = static_cast<__nv_bfloat16*>(col.raw());
    auto stream = static_cast<cudaStream_t>(gpu->native_stream());
    const int reps = 10;
    const double im2col_ms = gpu->time_ms([&] {
      for (int r = 0; r < reps; ++r) cuda::im2col3d_rows(bx, bpast, g, 0, 0, band, K, P, bcol, stream);
    }) / reps;
    auto gemm_ms = [&](bool pixel_rows) {
      auto run = [&] {
        bool ok = pixel_rows
                      ? gemm.run(colt.raw(), DType::BF16, nullptr, w.raw(), DType::BF16, 1.f, nullptr, y.raw(), P,
                                 c.Co, K, cuda::Epilogue::None)
                      : gemm.run(w.raw(), DType::BF16, nullptr, col.raw(), DType::BF16, 1.f, nullptr, y.raw(), c.Co,
                                 P, K, cuda::Epilogue::None, true);
        if (!ok) fail("probe gemm refused");
      };
      run();
      return gpu->time_ms([&] { for (int r = 0; r < reps; ++r) run(); }) / reps;
    };
    const double nn = gemm_ms(false), tn = gemm_ms(true), band_flops = 2.0 * P * c.Co * K;
    std::printf("PROBE conv3d C %lld -> %lld at %lldx%lld x %lld frames: %.2f ms (%.0f TFLOP/s); one band of %lld rows: "
                "im2col %.3f ms (%.0f GB/s written), product y[Co,P] = W col %.3f ms (%.0f TFLOP/s), "
                "y[P,Co] = col^T W^T %.3f ms (%.0f TFLOP/s)\n",
                (long long)c.C, (long long)c.Co, (long long)c.H, (long long)c.W, (long long)c.T, conv_ms,
                flops / conv_ms / 1e9, (long long)band, im2col_ms, 2.0 * K * P / im2col_ms / 1e6, nn,
                band_flops / nn / 1e9, tn, band_flops / tn / 1e9);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool vae = false, umt5 = false, profile = false, hd = false, probe = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--vae") vae = true;
    else if (a == "--umt5") umt5 = true;
    else if (a == "--profile") profile = true;
    else if (a == "--720p") hd = true;
    else if (a == "--conv-probe") probe = true;
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (!vae && !umt5 && !probe) vae = umt5 = true;
  try {
    if (!cuda_device_available()) fail("no CUDA device is visible");
    if (probe) bench_conv_probe();
    if (vae) bench_vae(profile, hd);
    if (umt5) bench_umt5();
  } catch (const Error& e) {
    std::fprintf(stderr, "raylight_cuda_bench: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
