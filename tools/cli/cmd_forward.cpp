// raylight forward: one prediction on given inputs, for comparing against other
// implementations. Tensor names are documented in the help text and README.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "commands.h"
#include "core/error.h"
#include "core/finite.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "dist/runtime.h"
#include "options.h"
#include "parallel_options.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"

namespace raylight::cli {

static constexpr const char* kHelp =
    "usage: raylight forward [options]\n"
    "  --model FILE|tiny   DiT safetensors or the embedded tiny model (tiny)\n"
    "  --variant NAME      which variant a checkpoint is, where its tensors cannot tell\n"
    "  --latent FILE       safetensors with 'latent' (one item: [16, F, H, W] video, [16, H, W]\n"
    "                      image) and the\n"
    "                      model's shared inputs (image-to-video: 'y' [20, F, H, W] and\n"
    "                      'clip_fea' [257, 1280])\n"
    "  --timestep T        0..1000 (1000 * sigma) (default 500)\n"
    "  --guidance G        distilled guidance of models that take it (else 'guidance' in the\n"
    "                      latent file, else the model's default; Flux dev: 3.5)\n"
    "  --context FILE      safetensors with the prompt's inputs, e.g. 'context' [tokens, text_dim]\n"
    "                      (tiny: built-in)\n"
    "  --out FILE          writes 'velocity', the latent's shape, fp32 (velocity.safetensors)\n"
    "  --dump DIR          also writes the model's named intermediates, one safetensors file\n"
    "                      each: DIR/NAME.BLOCK.safetensors (NAME.safetensors outside the\n"
    "                      blocks; .rankN before the suffix on several ranks: each rank's rows;\n"
    "                      the names are the family's, listed in the README)\n"
    "  --dump-names LIST   only these names (comma-separated)\n";

namespace {

// --dump: each traced intermediate downloaded and written as its own file.
void trace_into(const std::string& dir, const std::string& names_arg, LoadedModel& model) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir.empty()) fail("--dump needs a folder");
  if (fs::exists(fs::symlink_status(dir, ec)) && !fs::is_directory(dir, ec))
    fail("--dump ", dir, " exists and is not a folder");
  if (!fs::exists(dir, ec) && !fs::create_directory(dir, ec))
    fail("--dump: cannot make folder ", dir, ": ", ec.message());
  std::set<std::string> names;
  for (size_t b = 0; b <= names_arg.size();) {
    const size_t e = std::min(names_arg.find(',', b), names_arg.size());
    if (e > b) names.insert(names_arg.substr(b, e - b));
    b = e + 1;
  }
  const int rank = Runtime::world_rank(), world = Runtime::world_size();
  Backend& be = *model.backend;
  model.denoiser->set_trace([=, &be](const std::string& name, int layer, const Tensor& t) {
    if (!names.empty() && !names.count(name)) return;
    std::string file = dir + "/" + name;
    if (layer >= 0) file += "." + std::to_string(layer);
    if (world > 1) file += ".rank" + std::to_string(rank);
    write_safetensors(file + ".safetensors", {{name, be.download(t)}}, {});
  });
}

}  // namespace

int run_forward(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::fputs(kParallelHelp, stdout);
      return 0;
    }
  std::set<std::string> valued = {"model", "variant", "latent", "timestep", "guidance", "context", "out", "dump",
                                  "dump-names"};
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  Options opt(args, valued, kParallelFlags);
  ParallelLayout layout = parse_parallel(opt);
  if (layout.cfg != 1 || layout.dp != 1) fail("forward runs one prediction: --cfg-parallel and --dp do not apply");
  const std::string model_arg = opt.str("model", "tiny"), variant = opt.str("variant", "");
  if (!opt.has("latent")) fail("--latent FILE is required");
  const std::string latent_path = opt.str("latent", "");
  const double timestep = opt.number("timestep", 500.0);
  if (timestep < 0 || timestep > 1000) fail("--timestep must be within 0..1000, got ", timestep);
  const std::string out = opt.str("out", "velocity.safetensors");
  if (Runtime::world_rank() == 0) check_output_file(out);  // fails now, not after the forward

  std::unique_ptr<WeightStore> weights = open_store(model_arg, PartKind::Denoiser);
  const auto spec = denoiser_spec(*weights, model_arg, variant);
  const Tensor latent = read_input_tensor(latent_path, "latent");
  spec->check_latent(latent.shape(), "tensor 'latent'");
  Conditioning prompt;
  if (opt.has("context")) prompt = read_conditioning(opt.str("context", ""), *spec, true, false);
  else prompt = spec->builtin_conditioning(0);
  if (prompt.empty()) fail("--context FILE is required with a checkpoint model");
  Conditioning given = with_shared(prompt, read_conditioning(latent_path, *spec, false, true), *spec);
  if (opt.has("guidance") || !given.count("guidance"))
    given = with_guidance(*spec, given, opt.has("guidance") ? std::optional<double>(opt.number("guidance", 0)) : std::nullopt);
  const Conditioning conditioning = spec->check_conditioning(given, latent.shape());

  LoadedModel model = load_model(std::move(weights), make_backend(parse_device(opt), Runtime::world_rank(), parse_attention(opt)), layout,
                                 parse_placement(opt), model_arg, variant);
  model.weights->set_verbose(opt.flag("verbose"));
  if (opt.has("dump")) trace_into(opt.str("dump", ""), opt.str("dump-names", ""), model);
  Tensor v = model.denoiser->predict(latent, timestep, *model.denoiser->prepare(conditioning));
  if (Runtime::world_rank() != 0) return 0;
  finite_f32(v, "the predicted velocity");
  write_safetensors(out, {{"velocity", v}}, {{"raylight.model", spec->variant()}});
  std::fprintf(stderr, "wrote %s: velocity %s\n", out.c_str(), shape_str(v.shape()).c_str());
  return 0;
}

}  // namespace raylight::cli
