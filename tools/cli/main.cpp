// raylight: one executable, one subcommand per job. Errors from input are printed as one
// line naming what is wrong, with exit code 2; a usage line lists the subcommands.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "dist/launcher.h"
#include "dist/mpi_communicator.h"
#include "dist/runtime.h"
#include "io/temporaries.h"
#include "models/registry.h"

namespace {

constexpr const char* kUsage =
    "usage: raylight <command> [options]\n"
    "commands:\n"
    "  generate prompt -> video file (default: the embedded tiny encoder, DiT and VAE)\n"
    "  sample   text embeddings -> video latents (default: the embedded tiny model)\n"
    "  forward  one DiT forward (velocity prediction) on given inputs\n"
    "  inspect  describe a checkpoint: family, variant, dtypes, parameters\n"
    "  bench    time one DiT forward on the GPU at real shapes (random weights)\n"
    "  serve    keep a model loaded on the ranks and sample for HTTP clients (ComfyUI)\n"
    "run `raylight <command> --help` for its options\n";

// The families this build runs, from the registry.
void print_usage(FILE* out) {
  std::fputs(kUsage, out);
  std::fprintf(out, "models: %s\n", raylight::family_list().c_str());
}

// The value of option `name` in args, or "".
std::string option_value(const std::vector<std::string>& args, const std::string& name) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--" + name && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind("--" + name + "=", 0) == 0) return args[i].substr(name.size() + 3);
  }
  return "";
}

// --gpus 0,2,3 -> {"0", "2", "3"}.
std::vector<std::string> gpu_list(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  std::string v = option_value(args, "gpus"), item;
  if (v.empty()) return out;
  for (char ch : v + ",") {
    if (ch != ',') { item += ch; continue; }
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos)
      raylight::fail("--gpus expects a list of GPU numbers like 0,1,2,3, got '", v, "'");
    out.push_back(item);
    item.clear();
  }
  return out;
}

// Each rank started for --gpus sees only its own GPU (the one at its local rank in the
// list), before anything touches CUDA.
void pin_gpu(const std::vector<std::string>& gpus) {
  if (gpus.empty()) return;
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
  const size_t i = local ? static_cast<size_t>(std::atoi(local)) : 0;
  if (i >= gpus.size()) raylight::fail("local rank ", i, " has no GPU in --gpus (", gpus.size(), " listed)");
  setenv("CUDA_VISIBLE_DEVICES", gpus[i].c_str(), 1);
}

// The number of ranks asked for by --ranks or --gpus (validated again by the command).
int requested_ranks(const std::vector<std::string>& args) {
  if (auto gpus = gpu_list(args); !gpus.empty()) return static_cast<int>(gpus.size());
  {
    std::string v = option_value(args, "ranks");
    if (v.empty()) return 1;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (*end || n < 1 || n > 4096) raylight::fail("--ranks expects a positive integer, got '", v, "'");
    return static_cast<int>(n);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    print_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  // Ctrl-C or kill while an output is staged removes the temporary (`serve` replaces these
  // handlers with its clean stop).
  raylight::install_temporary_cleanup();
  using raylight::Runtime;
  // Where the rank of a failure is worth knowing, messages carry it.
  auto where = [&] {
    return Runtime::distributed() ? " [rank " + std::to_string(Runtime::world_rank()) + "]"
                                  : std::string();
  };
  int code = 0;
  try {
    if (int ranks = requested_ranks(args); ranks > 1 && !raylight::started_by_mpirun())
      raylight::exec_under_mpirun(ranks, std::vector<std::string>(argv, argv + argc));
    pin_gpu(gpu_list(args));
    // --timeout bounds MPI start-up and shutdown too, so it is known before MPI starts.
    if (std::string t = option_value(args, "timeout"); !t.empty()) {
      char* end = nullptr;
      const double s = std::strtod(t.c_str(), &end);
      if (*end == '\0' && s > 0 && s < 1e9) raylight::set_collective_timeout(s);
    }
    Runtime::init(&argc, &argv);
    if (command == "sample") code = raylight::cli::run_sample(args);
    else if (command == "generate") code = raylight::cli::run_generate(args);
    else if (command == "forward") code = raylight::cli::run_forward(args);
    else if (command == "inspect") code = raylight::cli::run_inspect(args);
    else if (command == "bench") code = raylight::cli::run_bench(args);
    else if (command == "serve") code = raylight::cli::run_serve(args);
    else {
      std::fprintf(stderr, "raylight: unknown command '%s'\n", command.c_str());
      print_usage(stderr);
      code = raylight::kExitError;
    }
  } catch (const raylight::Error& e) {
    std::fprintf(stderr, "raylight %s%s: error: %s\n", command.c_str(), where().c_str(), e.what());
    code = raylight::kExitError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raylight %s%s: internal error: %s\n", command.c_str(), where().c_str(), e.what());
    code = raylight::kExitInternal;
  }
  // A failing rank ends the whole job so no other rank waits for it.
  if (code != 0 && Runtime::distributed()) Runtime::abort_job(code);
  Runtime::finalize(code);
  return code;
}
