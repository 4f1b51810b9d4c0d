// raylight forward: one velocity prediction on given inputs, for comparing against other
// implementations. Tensor names are documented in the help text and README.
#include <cstdio>

#include "commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/wan/wan_tiny.h"
#include "dist/runtime.h"
#include "options.h"
#include "parallel_options.h"
#include "pipeline/wan_loader.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight forward [options]\n"
    "  --model FILE|tiny   Wan 2.1 DiT safetensors or the embedded tiny model (tiny)\n"
    "  --latent FILE       safetensors with 'latent' [16, F, H, W]; image-to-video models also\n"
    "                      read 'y' [20, F, H, W] and 'clip_fea' [257, 1280] from it\n"
    "  --timestep T        0..1000 (1000 * sigma) (default 500)\n"
    "  --context FILE      safetensors with 'context' [tokens, text_dim] (tiny: built-in)\n"
    "  --out FILE          writes 'velocity' [16, F, H, W] (velocity.safetensors)\n";

int run_forward(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  std::set<std::string> valued = {"model", "latent", "timestep", "context", "out"};
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  Options opt(args, valued, kParallelFlags);
  ParallelLayout layout = parse_parallel(opt);
  if (layout.cfg != 1 || layout.dp != 1) fail("forward runs one prediction: --cfg-parallel and --dp do not apply");
  const std::string model_arg = opt.str("model", "tiny");
  if (!opt.has("latent")) fail("--latent FILE is required");
  const std::string latent_path = opt.str("latent", "");
  WanInputs in;
  in.latent = read_input_tensor(latent_path, "latent");
  in.y = read_input_tensor(latent_path, "y", false);
  in.clip_fea = read_input_tensor(latent_path, "clip_fea", false);
  in.timestep = opt.number("timestep", 500.0);
  if (in.timestep < 0 || in.timestep > 1000) fail("--timestep must be within 0..1000, got ", in.timestep);
  if (opt.has("context")) in.context = read_input_tensor(opt.str("context", ""), "context");
  else if (model_arg == "tiny") in.context = wan_tiny_context(0);
  else fail("--context FILE is required with a checkpoint model");
  const std::string out = opt.str("out", "velocity.safetensors");

  LoadedWan wan = load_wan(model_arg, layout, parse_device(opt), parse_placement(opt));
  wan.weights->set_verbose(opt.flag("verbose"));
  Tensor v = wan.model->forward(in);
  if (Runtime::world_rank() != 0) return 0;
  write_safetensors(out, {{"velocity", v}}, {{"raylight.model", wan.model->config().variant()}});
  std::fprintf(stderr, "wrote %s: velocity %s\n", out.c_str(), shape_str(v.shape()).c_str());
  return 0;
}

}  // namespace raylight::cli
