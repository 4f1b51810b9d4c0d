// raylight sample: conditioning in, latents out. With an embedded model every input has a
// built-in default, so the command runs as is.
#include <chrono>
#include <cstdio>
#include <vector>
#include <unistd.h>

#include "commands.h"
#include "core/error.h"
#include "core/finite.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "dist/runtime.h"
#include "options.h"
#include "parallel_options.h"
#include "expert_options.h"
#include "sample_options.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "sampling/schedule.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight sample [options]\n"
    "  --model FILE|tiny     DiT safetensors, or the embedded tiny model (default tiny)\n"
    "  --variant NAME        which variant a checkpoint is, where its tensors cannot tell\n"
    "  --context FILE        conditioning: safetensors with the model's inputs, e.g. 'context'\n"
    "                        [tokens, 4096] (and 'clip_fea', 'y' for image-to-video models);\n"
    "                        [tokens, 64] for tiny, whose default is built-in embeddings;\n"
    "                        required with a checkpoint\n"
    "  --negative FILE       negative-prompt conditioning, same names (needed when cfg != 1)\n"
    "  --width W --height H  size in pixels (the model's default: 832x480; tiny: 128x128)\n"
    "  --frames F            frames of a video model (81; tiny: 9)\n"
    "  --steps N             sampling steps (30; tiny: 10)\n"
    "  --cfg G               classifier-free guidance scale, 1 disables it (the model's: 5)\n"
    "  --shift S             flow schedule shift (the model's rule: 5; Flux by image size)\n"
    "  --guidance G          distilled guidance of models that take it (Flux dev: 3.5)\n"
    "  --seed K              noise seed (0)\n"
    "  --sampler NAME        euler | unipc | dpmpp2m (the model's: unipc)\n"
    "  --start-step N --end-step M\n"
    "                        sample steps N..M of the --steps schedule only (ComfyUI's\n"
    "                        KSamplerAdvanced); a part ending early ends at sigma 0 unless\n"
    "  --leftover-noise      is given: then the latent keeps the noise of its last step\n"
    "  --latent FILE         continue from FILE's 'latent' (an earlier part's output, already\n"
    "                        noisy: no noise is added), e.g. --start-step N after --end-step N\n"
    "  --expert high|low     a two-expert model's expert for every step (default: the pair\n"
    "                        switches at its boundary)\n"
    "  --out FILE            output safetensors with tensor 'latent', e.g. [16, F', H/8, W/8]\n"
    "                        ([16, H/8, W/8] for image models)\n"
    "                        (latents.safetensors)\n";

// A part of the schedule, the sample it continues from and the expert (see kHelp).
static void apply_part_options(const Options& opt, const DenoiserSpec& spec, SampleJob& job) {
  if (opt.has("start-step") || opt.has("end-step") || opt.flag("leftover-noise")) {
    const int start = static_cast<int>(opt.integer_in("start-step", 0, 0, 1000000));
    const int end = static_cast<int>(opt.integer_in("end-step", 1000000, 0, 1000000));
    std::vector<double> part = cut_schedule(job.sigmas, start, end, opt.flag("leftover-noise"));
    if (part.size() < 2)
      fail("--start-step ", start, " with --end-step ", end, " leaves no step of the ", job.steps(),
           "-step schedule to sample");
    job.sigmas = std::move(part);
  }
  if (opt.has("latent")) {
    const std::string file = opt.str("latent", "");
    Tensor x = finite_f32(SafetensorsFile::open(file)->tensor("latent"), file + " tensor 'latent'");
    Shape batched = job.item_shape;
    batched.insert(batched.begin(), job.batch);
    if (job.batch == 1 && x.shape() == job.item_shape) x = x.reshape(batched);
    if (x.shape() != batched)
      fail("--latent ", file, " holds 'latent' of shape ", shape_str(x.shape()), "; this run samples ",
           shape_str(batched), " (the same --width, --height, --frames and --dp as the part before)");
    job.latent = x;
    job.add_noise = false;
  }
  if (opt.has("expert")) {
    const std::string e = opt.str("expert", "");
    if (!spec.expert()) fail("--expert is for two-expert models; ", spec.variant(), " is one model");
    if (e == "high") job.expert = ExpertChoice::High;
    else if (e == "low") job.expert = ExpertChoice::Low;
    else fail("--expert must be high or low, got '", e, "'");
  }
}

int run_sample(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kExpertHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  std::set<std::string> valued = {"model", "variant", "context", "negative", "out", "start-step", "end-step",
                                  "latent", "expert"};
  valued.insert(kSampleValued.begin(), kSampleValued.end());
  valued.insert(kExpertValued.begin(), kExpertValued.end());
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  std::set<std::string> flags = kParallelFlags;
  flags.insert("leftover-noise");
  Options opt(args, valued, flags);
  const ParallelLayout layout = parse_parallel(opt);
  const bool lead = Runtime::world_rank() == 0;  // rank 0 talks to the user and writes files
  const std::string model_arg = opt.str("model", "tiny"), variant = opt.str("variant", "");
  const std::string out = opt.str("out", "latents.safetensors");
  if (lead) check_output_file(out);  // a bad --out fails now, not after sampling

  // Every input is checked before the model loads, so mistakes fail fast.
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<WeightStore> weights = open_store(model_arg, PartKind::Denoiser);
  const auto spec = denoiser_spec(*weights, model_arg, variant);
  const LowExpertFile low_expert = check_low_expert(opt, *spec, model_arg);
  const SampleOptions so = parse_sample_options(opt, *spec);
  if (layout.cfg == 2 && so.cfg == 1.0) fail("--cfg-parallel needs guidance (--cfg other than 1)");
  check_run_estimate(opt, *spec, *weights, so, layout);
  // The positive file also holds the shared inputs (image-to-video's clip_fea, y); the
  // negative prompt's inputs come with them.
  const Conditioning positive = opt.has("context") ? read_conditioning(opt.str("context", ""), *spec, true, true)
                                                   : spec->builtin_conditioning(0);
  if (positive.empty()) fail("--context FILE is required with a checkpoint model");
  Conditioning negative =
      opt.has("negative") ? with_shared(read_conditioning(opt.str("negative", ""), *spec, true, false), positive, *spec)
                          : spec->builtin_conditioning(1);
  // An embedded model's negative prompt shares the positive file's shared inputs (TI2V's
  // first_frame), as a --negative file does.
  if (!negative.empty() && !opt.has("negative")) negative = with_shared(negative, positive, *spec);
  if (negative.empty() && so.cfg != 1.0) fail("--negative FILE is required when --cfg is not 1");
  SampleJob job = make_sample_job(*spec, so, positive, negative, layout.dp);
  apply_part_options(opt, *spec, job);

  LoadedModel model = load_model(std::move(weights), make_backend(parse_device(opt), Runtime::world_rank(), parse_attention(opt)), layout,
                                 parse_placement(opt), model_arg, variant);
  load_low_expert(model, low_expert);
  model.weights->set_verbose(opt.flag("verbose"));
  const double load_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (lead)
    std::fprintf(stderr, "model: %s, %s on %s, %d steps, cfg %g, shift %g, seed %llu, %d rank(s): %s\n",
                 spec->variant().c_str(), sampler_name(so.sampler).c_str(), model.backend->name().c_str(), so.steps,
                 so.cfg, so.shift.value_or(spec->default_shift(job.item_shape)), static_cast<unsigned long long>(so.seed), Runtime::world_size(),
                 model.groups.layout.describe().c_str());
  const bool tty = isatty(fileno(stderr));
  // When each step ended: the first step also builds attention plans, so later steps are
  // reported apart from it.
  std::vector<std::chrono::steady_clock::time_point> step_ends{std::chrono::steady_clock::now()};
  SampleHooks hooks;
  hooks.after_step = [&](int step, int total) {
    step_ends.push_back(std::chrono::steady_clock::now());
    if (step == 1) report_first_step(std::chrono::duration<double>(step_ends[1] - step_ends[0]).count(), total);
    if (!lead) return;
    std::fprintf(stderr, tty ? "\rstep %d/%d" : "step %d/%d\n", step, total);
    if (tty && step == total) std::fputc('\n', stderr);
  };
  Tensor latent = run_sample_job(model, job, hooks);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  report_peak_memory(model);
  if (!lead) return 0;
  finite_f32(latent, "the sampled latent");
  write_safetensors(out, {{"latent", latent}},
                    {{"raylight.model", spec->variant()},
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
