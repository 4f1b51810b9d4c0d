// The tiled Wan VAE decode on GPUs at real sizes with random weights (issue 18): untiled and
// tiled decodes of 480x832x81 and 720x1280x81, time, peak live and reserved GPU memory,
// under --gpu-memory-limit caps (tile size from the VAE's memory model), and the tiled vs
// untiled difference (the bound's measurement in bf16). With --ranks N (one GPU per rank)
// the tiles are spread over the ranks and compared with rank 0's single-GPU tiled decode.
// A measurement, not a test: it asserts nothing.
//   raylight_vae_tiles_bench [--sizes 480,720] [--caps 8,12] [--ranks N]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"
#include "dist/launcher.h"
#include "dist/runtime.h"
#include "models/common/latent_tiles.h"
#include "models/vae/wan_vae_codec.h"
#include "models/vae/wan_vae_config.h"
#include "pipeline/tiled_decode.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

constexpr double kGiB = 1073741824.0;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::unique_ptr<MemoryWeights> random_vae_weights(const WanVaeConfig& cfg) {
  auto w = std::make_unique<MemoryWeights>();
  uint64_t seed = 1;
  for (const auto& [name, shape] : wan_vae_expected_tensors(cfg)) {
    Tensor t = gaussian_noise(shape, ++seed);
    const bool gamma = name.size() > 6 && name.compare(name.size() - 6, 6, ".gamma") == 0;
    const bool weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    const double scale = gamma ? 0.1 : weight ? 1.0 / std::sqrt(double(shape_numel(shape) / shape[0])) : 0.1;
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = float((gamma ? 1.0 : 0.0) + scale * t.f32()[i]);
    w->put(name, t);
  }
  return w;
}

struct Gpu {
  std::unique_ptr<CudaBackend> backend;
  std::unique_ptr<LatentCodec> codec;
};

Gpu make_gpu(int device, double cap_gib) {
  Gpu g;
  CudaOptions o;
  o.device = device;
  g.backend = make_cuda_backend(o);
  if (cap_gib > 0) g.backend->set_memory_limit(static_cast<size_t>(cap_gib * kGiB));
  g.codec = make_wan_vae_codec(random_vae_weights(WanVaeConfig{}), *g.backend, "random real-size VAE");
  return g;
}

float max_abs_diff(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

// One decode: whole (plan null) or by tiles, here or over the group; prints a BENCH line.
Tensor run(Gpu& g, const Tensor& z, const TilePlan* plan, Communicator* group, const std::string& what) {
  g.backend->synchronize();
  g.backend->reset_peak();
  const double t0 = now_s();
  Tensor video;
  std::string err;
  try {
    if (!plan) video = g.codec->decode(z);
    else if (group) video = decode_tiles_on_ranks(*g.codec, z, *plan, *group);
    else video = decode_tiles(*g.codec, z, *plan);
    g.backend->synchronize();
  } catch (const Error& e) {
    err = e.what();
  }
  const double s = now_s() - t0;
  if (!group || group->rank() == 0) {
    std::printf("BENCH %s latent %s%s%s: ", what.c_str(), shape_str(z.shape()).c_str(), plan ? ", " : "",
                plan ? describe(*plan).c_str() : "");
    if (!err.empty()) std::printf("FAILED after %.2f s: %s\n", s, err.c_str());
    else
      std::printf("%.2f s, peak live %.2f GiB, peak reserved %.2f GiB\n", s, g.backend->peak_bytes() / kGiB,
                  g.backend->peak_reserved_bytes() / kGiB);
    std::fflush(stdout);
  }
  return video;
}

std::vector<double> numbers(const std::string& s) {
  std::vector<double> out;
  size_t p = 0;
  while (p < s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    out.push_back(std::stod(s.substr(p, q - p)));
    p = q + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<double> sizes{480, 720}, caps{8, 12};
  int ranks = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--sizes") sizes = numbers(argv[i + 1]);
    else if (a == "--caps") caps = numbers(argv[i + 1]);
    else if (a == "--ranks") ranks = std::atoi(argv[i + 1]);
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  if (ranks > 1 && !started_by_mpirun()) exec_under_mpirun(ranks, std::vector<std::string>(argv, argv + argc));
  Runtime::init(&argc, &argv);
  RankGroups groups = make_rank_groups(ParallelLayout{});
  const int rank = groups.world->rank();
  int code = 0;
  try {
    if (!cuda_device_available()) fail("no CUDA device is visible");
    for (double size : sizes) {
      const int64_t h = size == 720 ? 90 : 60, w = size == 720 ? 160 : 104;
      const Tensor z = gaussian_noise({16, 21, h, w}, 7);
      if (ranks == 1) {
        Gpu g = make_gpu(0, 0);
        run(g, gaussian_noise({16, 2, h, w}, 8), nullptr, nullptr, "warm-up");
        const Tensor whole = run(g, z, nullptr, nullptr, "untiled");
        const TilePlan half = plan_tiles(g.codec->tiling(), h, w, (h + 1) / 2, (w + 1) / 2);
        const Tensor tiled = run(g, z, &half, nullptr, "tiled 2x2");
        std::printf("BOUND tiled 2x2 vs untiled at %gp: max abs difference %.4g (values in [-1, 1])\n", size,
                    max_abs_diff(tiled, whole));
        g.codec.reset();  // the codec before the backend it runs on
        g.backend.reset();
        for (double cap : caps) {
          Gpu c = make_gpu(0, cap);
          const auto plan = vae_tile_plan(*c.codec, z.shape(), {0, 0, cap * kGiB, 0, 1});
          const Tensor v = run(c, z, plan ? &*plan : nullptr, nullptr,
                               "cap " + std::to_string(int(cap)) + " GiB" + (plan ? "" : " (untiled fits)"));
          if (v.defined()) std::printf("BOUND cap %g GiB vs untiled: %.4g\n", cap, max_abs_diff(v, whole));
          if (plan) run(c, z, nullptr, nullptr, "untiled under cap " + std::to_string(int(cap)) + " GiB");
        }
      } else {
        // One GPU per rank: rank 0's single-GPU tiled decode, then the same tiles over the ranks.
        Gpu g = make_gpu(rank, 0);
        const TilePlan plan = *vae_tile_plan(*g.codec, z.shape(), {0, 0, 0, 0, ranks});
        run(g, gaussian_noise({16, 2, h, w}, 8), &plan, groups.world.get(), "warm-up over ranks");
        Tensor one;
        if (rank == 0) one = run(g, z, &plan, nullptr, "tiled on rank 0 alone");
        groups.world->barrier();
        const Tensor spread = run(g, z, &plan, groups.world.get(), "tiled over " + std::to_string(ranks) + " GPUs");
        if (rank == 0)
          std::printf("EXACT %d GPUs vs one: max abs difference %.4g (0 expected on identical GPUs)\n", ranks,
                      max_abs_diff(spread, one));
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "raylight_vae_tiles_bench: error: %s\n", e.what());
    code = 2;
  }
  Runtime::finalize(code);
  return code;
}
