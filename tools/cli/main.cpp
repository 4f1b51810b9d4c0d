// raylight: one executable, one subcommand per job. Errors from input are printed as one
// line naming what is wrong, with exit code 2; a usage line lists the subcommands.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"

namespace {

constexpr const char* kUsage =
    "usage: raylight <command> [options]\n"
    "commands:\n"
    "  sample   text embeddings -> video latents (default: the embedded tiny model)\n"
    "  forward  one DiT forward (velocity prediction) on given inputs\n"
    "  inspect  describe a checkpoint: family, variant, dtypes, parameters\n"
    "run `raylight <command> --help` for its options\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "sample") return raylight::cli::run_sample(args);
    if (command == "forward") return raylight::cli::run_forward(args);
    if (command == "inspect") return raylight::cli::run_inspect(args);
    std::fprintf(stderr, "raylight: unknown command '%s'\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const raylight::Error& e) {
    std::fprintf(stderr, "raylight %s: error: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "raylight %s: internal error: %s\n", command.c_str(), e.what());
    return 3;
  }
}
