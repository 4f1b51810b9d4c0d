#include "parallel_options.h"

#include <sys/resource.h>

#include <cstdio>
#include <vector>

#include "core/error.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"
#ifdef RAYLIGHT_HAVE_NCCL
#include "dist/nccl/nccl_communicator.h"
#endif

namespace raylight::cli {
namespace {

size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<size_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
}

}  // namespace

const std::set<std::string> kParallelValued = {"ranks", "gpus", "device", "ulysses", "ring", "dp",
                                               "timeout", "gpu-memory-limit", "lora", "attention"};
const std::set<std::string> kParallelFlags = {"cfg-parallel", "fsdp", "offload", "verbose",
                                              "nccl-pcie-safe", "lora-skip-unmatched", "lora-merge"};
const char* const kParallelHelp =
    "parallel options:\n"
    "  --device D            cpu | cuda | auto (auto: CUDA when a GPU is visible)\n"
    "  --attention K         CUDA attention: cudnn | own | fp8 (cuDNN fp8, q/k/v quantised per\n"
    "                        tensor; default RAYLIGHT_ATTENTION, else cudnn)\n"
    "  --ranks N             run N ranks (started through mpirun; default 1)\n"
    "  --gpus LIST           one rank per listed GPU, e.g. 0,1,2,3 (implies --device cuda)\n"
    "  --nccl-pcie-safe      NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 for PCIe cards without P2P\n"
    "  --ulysses N           Ulysses sequence-parallel degree\n"
    "  --ring N              Ring attention degree (USP when combined with --ulysses)\n"
    "  --cfg-parallel        conditional and unconditional passes on two rank groups\n"
    "  --dp N                data parallel: N groups sample seeds seed..seed+N-1\n"
    "  --timeout S           seconds any collective may take before the job ends (300)\n"
    "  --fsdp                shard weights over all ranks; gather each block before it runs\n"
    "  --offload             keep weights in host memory, make one block ahead on the device\n"
    "  --verbose             print each rank's weight memory after every block\n"
    "  --gpu-memory-limit G  never hold more than G GiB of GPU memory per rank\n"
    "  --lora FILE[:S]       apply a LoRA at strength S (default 1; repeat for several): merged\n"
    "                        into bf16/fp16 weights, a low-rank side product on fp8 weights\n"
    "  --lora-merge          merge LoRAs into bf16 copies of fp8 weights instead\n"
    "  --lora-skip-unmatched apply the keys that match and list the others (else refused)\n";

BackendChoice parse_device(const Options& opt) {
  BackendChoice c = BackendChoice::Auto;
  const std::string name = opt.str("device", opt.has("gpus") ? "cuda" : "auto");
  if (!backend_choice_from_name(name, &c)) fail("unknown --device '", name, "'; choose cpu, cuda or auto");
  if (opt.has("gpus") && c == BackendChoice::Cpu) fail("--gpus runs on GPUs; it cannot be combined with --device cpu");
  return c;
}

std::string parse_attention(const Options& opt) {
  const std::string name = opt.str("attention", "");
  if (!attention_name_known(name)) fail("--attention must be cudnn, own or fp8, got '", name, "'");
  return name;
}

ParallelLayout parse_parallel(const Options& opt) {
  const int world = Runtime::world_size();
  if (opt.flag("nccl-pcie-safe")) {
#ifdef RAYLIGHT_HAVE_NCCL
    std::string what = apply_pcie_safe_nccl_settings();
    if (Runtime::world_rank() == 0) std::fprintf(stderr, "NCCL: %s\n", what.c_str());
#endif
  }
  const int64_t ranks = opt.integer("ranks", world);
  if (ranks != world)
    fail("--ranks ", ranks, " but this job has ", world, " ranks (an outer mpirun decides)");
  if (opt.has("timeout")) set_collective_timeout(opt.number("timeout", 300));
  ParallelLayout l;
  l.cfg = opt.flag("cfg-parallel") ? 2 : 1;
  l.dp = static_cast<int>(opt.integer("dp", 1));
  l.ring = static_cast<int>(opt.integer("ring", 1));
  if (!opt.has("ulysses") && !opt.has("ring")) {
    l.auto_sequence = true;  // the loader picks Ulysses and Ring degrees for the model's heads
    return l;
  }
  const int rest = l.cfg * l.dp * l.ring;
  l.ulysses = static_cast<int>(opt.integer("ulysses", rest > 0 && world % rest == 0 ? world / rest : 1));
  return l;
}

WeightPlacement parse_placement(const Options& opt) {
  WeightPlacement p{opt.flag("fsdp"), opt.flag("offload")};
  if (opt.has("gpu-memory-limit")) {
    const double gib = opt.number("gpu-memory-limit", 0);
    if (!(gib > 0)) fail("--gpu-memory-limit expects a positive number of GiB, got ", gib);
    p.gpu_memory_limit = static_cast<size_t>(gib * 1073741824.0);
  }
  for (const auto& arg : opt.all("lora")) p.loras.files.push_back(parse_lora_argument(arg));
  p.loras.skip_unmatched = opt.flag("lora-skip-unmatched");
  p.loras.merge_fp8 = opt.flag("lora-merge");
  if ((p.loras.skip_unmatched || p.loras.merge_fp8) && p.loras.empty() && !opt.has("lora-low"))
    fail("--lora-merge and --lora-skip-unmatched apply to LoRAs; give them with --lora FILE");
  return p;
}

void report_peak_memory(const LoadedModel& model) {
  struct Peak {
    double weights, rss, device;
  } mine{static_cast<double>(model.weights->peak_held_bytes()), static_cast<double>(peak_rss_bytes()),
         static_cast<double>(model.backend->peak_device_bytes())};
  std::vector<Peak> all(model.groups.world->size());
  model.groups.world->all_gather(&mine, all.data(), sizeof(Peak));
  if (Runtime::world_rank() != 0) return;
  for (size_t r = 0; r < all.size(); ++r) {
    char gpu[64] = "";
    if (all[r].device > 0) std::snprintf(gpu, sizeof gpu, ", peak GPU memory %.2f GiB", all[r].device / (1 << 30));
    // A store that reads weights in place (a memory map, the embedded model) holds no copy.
    char weights[96] = "weights used in place (no copy held)";
    if (all[r].weights > 0)
      std::snprintf(weights, sizeof weights, "peak weight memory %.2f MiB (%.0f bytes)",
                    all[r].weights / (1 << 20), all[r].weights);
    std::fprintf(stderr, "rank %zu: %s, peak process memory %.1f MiB%s\n", r, weights,
                 all[r].rss / (1 << 20), gpu);
  }
}

}  // namespace raylight::cli
