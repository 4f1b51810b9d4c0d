// raylight sample: text embeddings in, latents out. With --model tiny every input has a
// built-in default, so the command runs as is.
#include <chrono>
#include <cstdio>
#include <vector>
#include <unistd.h>

#include "commands.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/wan/wan_tiny.h"
#include "dist/runtime.h"
#include "options.h"
#include "parallel_options.h"
#include "sample_options.h"
#include "pipeline/sample_latents.h"
#include "pipeline/wan_loader.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight sample [options]\n"
    "  --model FILE|tiny     Wan 2.1 DiT safetensors, or the embedded tiny model (default tiny)\n"
    "  --context FILE        text embeddings: safetensors with tensor 'context' [tokens, 4096]\n"
    "                        (default with tiny: built-in embeddings)\n"
    "  --negative FILE       negative-prompt embeddings, tensor 'context' (needed when cfg != 1)\n"
    "  --width W --height H  video size in pixels, multiples of 16 (832x480; tiny: 128x128)\n"
    "  --frames F            4k+1 frames (81; tiny: 9)\n"
    "  --steps N             sampling steps (30; tiny: 10)\n"
    "  --cfg G               classifier-free guidance scale, 1 disables it (5)\n"
    "  --shift S             flow schedule shift (5)\n"
    "  --seed K              noise seed (0)\n"
    "  --sampler NAME        euler | unipc | dpmpp2m (unipc)\n"
    "  --out FILE            output safetensors with tensor 'latent' [16, F', H/8, W/8]\n"
    "                        (latents.safetensors)\n";

int run_sample(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  std::set<std::string> valued = {"model", "context", "negative", "out"};
  valued.insert(kSampleValued.begin(), kSampleValued.end());
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  Options opt(args, valued, kParallelFlags);
  const ParallelLayout layout = parse_parallel(opt);
  const bool lead = Runtime::world_rank() == 0;  // rank 0 talks to the user and writes files
  const std::string model_arg = opt.str("model", "tiny");
  const bool tiny = model_arg == "tiny";
  const SampleOptions so = parse_sample_options(opt, tiny);
  const std::string out = opt.str("out", "latents.safetensors");

  // Check every input before loading the model, so mistakes fail fast.
  Tensor context, negative;
  if (opt.has("context")) context = read_input_tensor(opt.str("context", ""), "context");
  else if (tiny) context = wan_tiny_context(0);
  else fail("--context FILE is required with a checkpoint model");
  if (opt.has("negative")) negative = read_input_tensor(opt.str("negative", ""), "context");
  else if (tiny) negative = wan_tiny_context(1);
  else if (so.cfg != 1.0) fail("--negative FILE is required when --cfg is not 1");

  auto t0 = std::chrono::steady_clock::now();
  LoadedWan wan = load_wan(model_arg, layout, parse_device(opt), parse_placement(opt));
  wan.weights->set_verbose(opt.flag("verbose"));
  const double load_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  wan_latent_shape(wan.model->config(), so);  // validates the size before any work
  if (lead)
    std::fprintf(stderr, "model: %s, %s on %s, %d steps, cfg %g, shift %g, seed %llu, %d rank(s): %s\n",
                 wan.model->config().variant().c_str(), sampler_name(so.sampler).c_str(),
                 wan.backend->name().c_str(), so.steps, so.cfg, so.shift,
                 static_cast<unsigned long long>(so.seed), Runtime::world_size(),
                 wan.groups.layout.describe().c_str());
  const bool tty = isatty(fileno(stderr));
  // When each step ended: the first step also builds attention plans, so later steps are
  // reported apart from it.
  std::vector<std::chrono::steady_clock::time_point> step_ends{std::chrono::steady_clock::now()};
  Tensor latent = sample_wan_latents(
      *wan.model, context, negative, so,
      [&](int step, int total) {
        step_ends.push_back(std::chrono::steady_clock::now());
        if (!lead) return;
        std::fprintf(stderr, tty ? "\rstep %d/%d" : "step %d/%d\n", step, total);
        if (tty && step == total) std::fputc('\n', stderr);
      },
      {wan.groups.cfg.get(), wan.groups.dp.get()});
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report_peak_memory(wan);
  if (!lead) return 0;
  write_safetensors(out, {{"latent", latent}},
                    {{"raylight.model", wan.model->config().variant()},
                     {"raylight.sampler", sampler_name(so.sampler)},
                     {"raylight.steps", std::to_string(so.steps)},
                     {"raylight.seed", std::to_string(so.seed)}});
  std::fprintf(stderr, "wrote %s: latent %s in %.2f s (load %.2f s, sampling %.2f s)\n", out.c_str(),
               shape_str(latent.shape()).c_str(), secs, load_secs, secs - load_secs);
  auto span = [&](size_t a, size_t b) { return std::chrono::duration<double>(step_ends[b] - step_ends[a]).count(); };
  if (step_ends.size() > 2)
    std::fprintf(stderr, "step time: first %.3f s, then %.3f s per step over %zu steps\n", span(0, 1),
                 span(1, step_ends.size() - 1) / (step_ends.size() - 2), step_ends.size() - 2);
  return 0;
}

}  // namespace raylight::cli
