// The Wan 2.2 VAE decode on one GPU at TI2V-5B's size with random weights (issue 17): the
// released shapes (encoder 160, decoder 256, 48 latent channels), a [48, 31, 44, 80] latent
// (704x1280x121), decoded untiled and by tiles under a memory cap (tile size from the codec's
// memory model; 2x2 tiles where it says the whole decode fits), time, peak live and reserved
// GPU memory, and the tiled vs untiled difference in bf16. A measurement, not a test: it asserts nothing.
//   raylight_wan22_vae_bench [--frames 121] [--height 704] [--width 1280] [--cap 12]
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "models/common/latent_tiles.h"
#include "models/vae/wan22_vae_codec.h"
#include "models/vae/wan22_vae_config.h"
#include "pipeline/tiled_decode.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

constexpr double kGiB = 1073741824.0;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::unique_ptr<MemoryWeights> random_weights(const Wan22VaeConfig& cfg) {
  auto w = std::make_unique<MemoryWeights>();
  uint64_t seed = 1;
  for (const auto& [name, shape] : wan22_vae_expected_tensors(cfg)) {
    Tensor t = gaussian_noise(shape, ++seed);
    const bool gamma = name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0;
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    const double scale = gamma ? 0.1 : weight ? 1.0 / std::sqrt(double(shape_numel(shape) / shape[0])) : 0.1;
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float((gamma ? 1.0 : 0.0) + scale * t.f32()[i]);
    w->put(name, t);
  }
  return w;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

Tensor run(CudaBackend& be, LatentCodec& codec, const Tensor& z, const TilePlan* plan, const std::string& what) {
  be.synchronize();
  be.reset_peak();
  const double t0 = now_s();
  Tensor video;
  std::string err;
  try {
    video = plan ? decode_tiles(codec, z, *plan) : codec.decode(z);
    be.synchronize();
  } catch (const Error& e) {
    err = e.what();
  }
  const double s = now_s() - t0;
  std::printf("BENCH %s latent %s%s%s: ", what.c_str(), shape_str(z.shape()).c_str(), plan ? ", " : "",
              plan ? describe(*plan).c_str() : "");
  if (!err.empty()) std::printf("FAILED after %.2f s: %s\n", s, err.c_str());
  else
    std::printf("%.2f s, peak live %.2f GiB, peak reserved %.2f GiB\n", s, be.peak_bytes() / kGiB,
                be.peak_reserved_bytes() / kGiB);
  std::fflush(stdout);
  return video;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t frames = 121, height = 704, width = 1280;
  double cap = 12;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--frames") frames = std::atoll(argv[i + 1]);
    else if (a == "--height") height = std::atoll(argv[i + 1]);
    else if (a == "--width") width = std::atoll(argv[i + 1]);
    else if (a == "--cap") cap = std::atof(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  try {
    if (!cuda_device_available()) fail("no CUDA device is visible");
    const double t0 = now_s();
    auto weights = random_weights(Wan22VaeConfig{});
    std::printf("random Wan 2.2 VAE weights made in %.1f s\n", now_s() - t0);
    const Tensor z = gaussian_noise({48, 1 + (frames - 1) / 4, height / 16, width / 16}, 7);
    Tensor whole;
    {
      auto be = make_cuda_backend(CudaOptions{});
      auto codec = make_wan22_vae_codec(std::move(weights), *be, "random real-size Wan 2.2 VAE");
      run(*be, *codec, gaussian_noise({48, 2, height / 16, width / 16}, 8), nullptr, "warm-up");
      whole = run(*be, *codec, z, nullptr, "untiled");
      weights = random_weights(Wan22VaeConfig{});  // the codec keeps its own; the next one gets fresh ones
    }
    auto be = make_cuda_backend(CudaOptions{});
    be->set_memory_limit(static_cast<size_t>(cap * kGiB));
    auto codec = make_wan22_vae_codec(std::move(weights), *be, "random real-size Wan 2.2 VAE");
    // The cap's plan; where the memory model says the whole decode fits under it, 2x2 tiles
    // instead, so the tiled decode is measured either way.
    const int64_t h = z.dim(2), w = z.dim(3);
    const auto capped = vae_tile_plan(*codec, z.shape(), {0, 0, cap * kGiB, 0, 1});
    const TilePlan plan = capped ? *capped : plan_tiles(codec->tiling(), h, w, (h + 1) / 2, (w + 1) / 2);
    const std::string what = "cap " + std::to_string(int(cap)) + " GiB" + (capped ? "" : " (untiled fits; 2x2 tiles)");
    const Tensor v = run(*be, *codec, z, &plan, what);
    std::printf("BOUND %s vs untiled: max abs difference %.4g (values in [-1, 1])\n", what.c_str(),
                max_abs_diff(v, whole));
  } catch (const Error& e) {
    std::fprintf(stderr, "raylight_wan22_vae_bench: error: %s\n", e.what());
    return 2;
  }
  return 0;
}
