#include "pipeline/generate.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "dist/runtime.h"
#include "io/video/video_format.h"
#include "io/video/video_writer.h"
#include "models/t5/umt5_encoder.h"
#include "models/vae/wan_vae.h"

namespace raylight {
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The .safetensors files in `dir` whose names contain every one of `parts` (lower case).
std::vector<std::string> candidates(const fs::path& dir, const std::vector<std::string>& parts) {
  std::vector<std::string> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (e.path().extension() != ".safetensors") continue;
    bool all = true;
    for (const auto& p : parts) all = all && name.find(p) != std::string::npos;
    if (all) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string pick(const fs::path& dir, const std::vector<std::string>& parts, const char* what,
                 const char* flag) {
  auto found = candidates(dir, parts);
  if (found.size() == 1) return found[0];
  std::string list;
  for (const auto& f : found) list += "\n  " + f;
  if (found.empty())
    fail("no ", what, " found in ", dir.string(), " (looked for *", parts[0], "*.safetensors); pass ", flag);
  fail("several ", what, " files in ", dir.string(), ", choose one with ", flag, ":", list);
}

}  // namespace

GenerateFiles find_comfyui_files(const std::string& root, GenerateFiles f, bool model_given,
                                 bool encoder_given, bool vae_given) {
  const fs::path models = fs::path(root) / "models";
  if (!fs::is_directory(models)) fail("--comfyui-dir ", root, " has no models/ folder");
  if (!model_given) f.model = pick(models / "diffusion_models", {"wan2.1", "t2v"}, "Wan 2.1 T2V model", "--model");
  if (!encoder_given) f.text_encoder = pick(models / "text_encoders", {"umt5"}, "umT5 text encoder", "--text-encoder");
  if (!vae_given) f.vae = pick(models / "vae", {"wan", "vae"}, "Wan VAE", "--vae");
  return f;
}

struct Generator::Parts {
  std::unique_ptr<UMT5Encoder> encoder;
  std::unique_ptr<WanVae> vae;
};

Generator::~Generator() = default;

Generator::Generator(const GenerateFiles& files, const ParallelLayout& layout, BackendChoice device,
                     WeightPlacement placement)
    : parts_(std::make_unique<Parts>()) {
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto* path : {&files.model, &files.text_encoder, &files.vae})
    if (*path != "tiny" && !fs::exists(*path)) fail("file ", *path, " does not exist");
  wan_ = load_wan(files.model, layout, device, placement);
  parts_->encoder = UMT5Encoder::load(files.text_encoder, *wan_.backend, files.tokenizer);
  parts_->vae = WanVae::load(files.vae, *wan_.backend);
  const WanConfig& dit = wan_.model->config();
  if (dit.image_to_video())
    fail("generate makes text-to-video; ", files.model, " is an image-to-video model");
  if (!parts_->encoder->has_tokenizer())
    fail("text encoder ", files.text_encoder, " has no spiece_model tensor; pass --tokenizer FILE.model");
  if (parts_->encoder->config().d_model != dit.text_dim)
    fail("text encoder ", files.text_encoder, " outputs ", parts_->encoder->config().d_model,
         " features but the DiT ", files.model, " reads ", dit.text_dim);
  if (parts_->vae->config().z_dim != dit.out_dim)
    fail("VAE ", files.vae, " has ", parts_->vae->config().z_dim, " latent channels but the DiT ",
         files.model, " makes ", dit.out_dim);
  load_s_ = seconds_since(t0);
}

GenerateTimings Generator::run(const std::string& prompt, const std::string& negative,
                               const SampleOptions& opts, const std::string& out, double fps,
                               const StepCallback& on_step) {
  video::video_format_of(out);  // an unsupported extension fails before any work
  wan_latent_shape(wan_.model->config(), opts);
  GenerateTimings t;
  t.load_s = load_s_;
  auto t0 = std::chrono::steady_clock::now();
  Tensor context = parts_->encoder->encode_prompt(prompt);
  Tensor negative_context = opts.cfg != 1.0 ? parts_->encoder->encode_prompt(negative) : Tensor();
  t.encode_s = seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  Tensor latent = sample_wan_latents(*wan_.model, context, negative_context, opts, on_step,
                                     {wan_.groups.cfg.get(), wan_.groups.dp.get()});
  t.sample_s = seconds_since(t0);
  if (Runtime::world_rank() != 0) return t;

  // Data parallel gives one latent per seed: each becomes its own file, out_<i>.ext.
  const int64_t videos = latent.ndim() == 5 ? latent.dim(0) : 1;
  const Shape one = latent.ndim() == 5 ? Shape(latent.shape().begin() + 1, latent.shape().end())
                                       : latent.shape();
  for (int64_t i = 0; i < videos; ++i) {
    Tensor lat = videos == 1 ? latent : latent.reshape({videos, -1}).slice_rows(i, i + 1).reshape(one);
    t0 = std::chrono::steady_clock::now();
    Tensor video = parts_->vae->decode(lat);
    t.decode_s += seconds_since(t0);
    std::string path = out;
    if (videos > 1) {
      const fs::path p(out);
      path = (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + p.extension().string())).string();
    }
    t0 = std::chrono::steady_clock::now();
    write_video(path, video, fps);
    t.write_s += seconds_since(t0);
  }
  return t;
}

}  // namespace raylight
