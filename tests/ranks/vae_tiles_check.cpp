// The tiled VAE decode spread over 1-4 CPU ranks (pipeline/tiled_decode.h): the tiny Wan
// VAE decodes a noise latent by tiles dealt round-robin over the ranks; rank 0 writes the
// picture to --out (safetensors, "video"), which the unit test compares with the
// single-process tiled decode, bit for bit.
//
//   raylight_vae_tiles_check --ranks N --height H --width W --frames F --tile TH TW --out FILE
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "dist/launcher.h"
#include "dist/runtime.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "pipeline/tiled_decode.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback, int skip = 0) {
  for (int i = 1; i + 1 + skip < argc; ++i)
    if (argv[i] == "--" + name) return argv[i + 1 + skip];
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int ranks = std::atoi(arg(argc, argv, "ranks", "1").c_str());
  if (ranks > 1 && !started_by_mpirun()) exec_under_mpirun(ranks, std::vector<std::string>(argv, argv + argc));
  Runtime::init(&argc, &argv);
  RankGroups groups = make_rank_groups(ParallelLayout{});
  int code = 0;
  try {
    auto cpu = make_cpu_backend();
    auto codec = make_latent_codec(open_store("tiny", PartKind::LatentCodec), *cpu, "tiny");
    const int64_t h = std::atoll(arg(argc, argv, "height", "12").c_str());
    const int64_t w = std::atoll(arg(argc, argv, "width", "20").c_str());
    const int64_t f = std::atoll(arg(argc, argv, "frames", "2").c_str());
    const int64_t th = std::atoll(arg(argc, argv, "tile", "0").c_str());
    const int64_t tw = std::atoll(arg(argc, argv, "tile", "0", 1).c_str());
    const TilePlan plan = plan_tiles(codec->tiling(), h, w, th, tw);
    // Only rank 0's latent counts: the others pass zeros.
    const Shape shape{codec->latent_channels(), f, h, w};
    const Tensor latent = groups.world->rank() == 0 ? gaussian_noise(shape, 0x7115) : Tensor::zeros(shape);
    Tensor video = decode_tiles_on_ranks(*codec, latent, plan, *groups.world);
    if (groups.world->rank() == 0) {
      write_safetensors(arg(argc, argv, "out", "tiles.safetensors"), {{"video", video}});
      std::printf("%s on %d rank(s)\n", describe(plan).c_str(), groups.world->size());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    code = 1;
  }
  Runtime::finalize(code);
  return code;
}
