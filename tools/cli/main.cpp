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
#include "dist/runtime.h"

namespace {

constexpr const char* kUsage =
    "usage: raylight <command> [options]\n"
    "commands:\n"
    "  sample   text embeddings -> video latents (default: the embedded tiny model)\n"
    "  forward  one DiT forward (velocity prediction) on given inputs\n"
    "  inspect  describe a checkpoint: family, variant, dtypes, parameters\n"
    "  bench    time one Wan forward on the GPU at real shapes (random weights)\n"
    "run `raylight <command> --help` for its options\n";

// The value of --ranks, if given (validated again by the command's own parser).
int requested_ranks(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    std::string v;
    if (args[i] == "--ranks" && i + 1 < args.size()) v = args[i + 1];
    else if (args[i].rfind("--ranks=", 0) == 0) v = args[i].substr(8);
    else continue;
    char* end = nullptr;
    long n = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || n < 1 || n > 4096) raylight::fail("--ranks expects a positive integer, got '", v, "'");
    return static_cast<int>(n);
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
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
    Runtime::init(&argc, &argv);
    if (command == "sample") code = raylight::cli::run_sample(args);
    else if (command == "forward") code = raylight::cli::run_forward(args);
    else if (command == "inspect") code = raylight::cli::run_inspect(args);
    else if (command == "bench") code = raylight::cli::run_bench(args);
    else {
      std::fprintf(stderr, "raylight: unknown command '%s'\n%s", command.c_str(), kUsage);
      code = 2;
    }
  } catch (const raylight::Error& e) {
    std::fprintf(stderr, "raylight %s%s: error: %s\n", command.c_str(), where().c_str(), e.what());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raylight %s%s: internal error: %s\n", command.c_str(), where().c_str(), e.what());
    code = 3;
  }
  // A failing rank ends the whole job so no other rank waits for it.
  if (code != 0 && Runtime::distributed()) Runtime::abort_job(code);
  Runtime::finalize();
  return code;
}
