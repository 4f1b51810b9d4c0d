// raylight generate: a prompt in, a video out. With no model flags everything is the
// embedded tiny model (text encoder, DiT, VAE), so it runs in seconds on a CPU.
#include <cstdio>
#include <unistd.h>

#include "commands.h"
#include "core/error.h"
#include "dist/runtime.h"
#include "options.h"
#include "parallel_options.h"
#include "sample_options.h"
#include "pipeline/generate.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight generate [options]\n"
    "  --prompt TEXT            what to make (default: a short demo prompt)\n"
    "  --negative-prompt TEXT   what to steer away from (empty)\n"
    "  --model FILE|tiny        Wan 2.1 T2V DiT safetensors (tiny)\n"
    "  --text-encoder FILE|tiny umT5-XXL safetensors, e.g. umt5_xxl_fp8_e4m3fn_scaled (tiny)\n"
    "  --tokenizer FILE         SentencePiece .model when the encoder file has no spiece_model\n"
    "  --vae FILE|tiny          Wan 2.1 VAE safetensors, e.g. wan_2.1_vae (tiny)\n"
    "  --comfyui-dir DIR        find the three files under DIR/models/... (flags above win)\n"
    "  --width W --height H --frames F   (832x480x81; tiny: 128x128x9)\n"
    "  --steps N --cfg G --shift S --seed K --sampler euler|unipc|dpmpp2m   (30, 5, 5, 0, unipc)\n"
    "  --out FILE               .mp4 (H.264), .webp (animated), .png or dir/ (frames) (video.mp4)\n"
    "  --fps N                  frames per second of the file (16)\n";

namespace {

// A bar on a terminal, plain lines otherwise (logs, CI).
void show_progress(int step, int total) {
  if (!isatty(fileno(stderr))) {
    std::fprintf(stderr, "step %d/%d\n", step, total);
    return;
  }
  const int width = 30, filled = total ? step * width / total : width;
  std::fprintf(stderr, "\r[%.*s%*s] step %d/%d", filled, "##############################",
               width - filled, "", step, total);
  if (step == total) std::fputc('\n', stderr);
}

}  // namespace

int run_generate(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  std::set<std::string> valued = {"prompt", "negative-prompt", "model", "text-encoder", "tokenizer",
                                  "vae", "comfyui-dir", "out", "fps"};
  valued.insert(kSampleValued.begin(), kSampleValued.end());
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  Options opt(args, valued, kParallelFlags);
  const ParallelLayout layout = parse_parallel(opt);
  const bool lead = Runtime::world_rank() == 0;

  GenerateFiles files;
  files.model = opt.str("model", "tiny");
  files.text_encoder = opt.str("text-encoder", "tiny");
  files.vae = opt.str("vae", "tiny");
  files.tokenizer = opt.str("tokenizer", "");
  if (opt.has("comfyui-dir"))
    files = find_comfyui_files(opt.str("comfyui-dir", ""), files, opt.has("model"),
                               opt.has("text-encoder"), opt.has("vae"));
  const SampleOptions so = parse_sample_options(opt, files.model == "tiny");
  const double fps = opt.number("fps", 16.0);
  const std::string out = opt.str("out", "video.mp4");
  const std::string prompt = opt.str("prompt", "a red fox running through fresh snow, morning light");

  Generator gen(files, layout, parse_device(opt), parse_placement(opt));
  gen.wan().weights->set_verbose(opt.flag("verbose"));
  if (lead)
    std::fprintf(stderr, "model: %s on %s, %d steps, %lldx%lldx%lld, %d rank(s): %s\n",
                 gen.wan().model->config().variant().c_str(), gen.wan().backend->name().c_str(),
                 so.steps, (long long)so.width, (long long)so.height, (long long)so.frames,
                 Runtime::world_size(), gen.wan().groups.layout.describe().c_str());
  GenerateTimings t = gen.run(prompt, opt.str("negative-prompt", ""), so, out, fps,
                              [&](int step, int total) { if (lead) show_progress(step, total); });
  report_peak_memory(gen.wan());
  if (!lead) return 0;
  std::fprintf(stderr, "wrote %s\ntiming: load %.2f s, encode %.2f s, sample %.2f s, decode %.2f s, write %.2f s\n",
               out.c_str(), t.load_s, t.encode_s, t.sample_s, t.decode_s, t.write_s);
  return 0;
}

}  // namespace raylight::cli
