// The embedded demo model (src/models/demo): first, that the engine computes what PyTorch
// trained. tests/fixtures/demo_case.safetensors holds float64 outputs of the training code's
// own modules (training/demo/export.py) on the shipped bf16 weights: the tiny umT5 the DiT
// was conditioned on (there regenerated from the documented noise generator), a DiT velocity
// and a VAE decode and encode. We compute in fp32, so the tolerances are fp32 rounding (the
// Wan golden tests' 5e-5 on velocities, 1e-5 on the video, 2e-5 on text); a weight under the
// wrong name, a transposed tensor or a missed metadata field moves outputs by O(1).
//
// Then the command as a user runs it: parallel layouts give the video one rank gives; the
// server gives the command line's video; prompts outside the vocabulary still run and say
// so; the model card sets the defaults and the help text.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "backend/backend_select.h"
#include "cli_runner.h"
#include "io/safetensors.h"
#include "io/video/video_probe.h"
#include "models/registry.h"
#include "test_server_support.h"
#include "../part_loaders.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

std::shared_ptr<SafetensorsFile> demo_case() { return SafetensorsFile::open(fixture("demo_case.safetensors")); }

}  // namespace

TEST(DemoModel, TextEncoderMatchesTraining) {
  auto c = demo_case();
  auto backend = make_backend(BackendChoice::Cpu);
  auto enc = load_umt5("demo", *backend);
  const char* prompts[] = {"a red circle moving right on a blue background",
                           "A green square moving left on a white striped background.",
                           "a red fox running through fresh snow"};
  for (int n = 0; n < 3; ++n) {
    const Tensor ids = c->tensor("ids_" + std::to_string(n));
    const std::vector<int> want(ids.data<int32_t>(), ids.data<int32_t>() + ids.numel());
    EXPECT_EQ(enc->tokenizer().encode(prompts[n]), want) << prompts[n];
    Tensor out = enc->encode_prompt(prompts[n]);
    EXPECT_LT(max_abs_diff(out, c->tensor("text_" + std::to_string(n)).to_f32()), 2e-5f) << prompts[n];
  }
}

TEST(DemoModel, DiTMatchesTraining) {
  auto c = demo_case();
  LoadedModel demo = load_model("demo");
  EXPECT_EQ(demo.spec->embedded_name(), "demo");
  WanInputs in;
  in.latent = c->tensor("dit_latent").to_f32();
  in.timestep = c->tensor("dit_timestep").to_f32().f32()[0];
  in.context = c->tensor("text_0").to_f32();
  Tensor v = wan_of(demo).forward(in);
  EXPECT_LT(max_abs_diff(v, c->tensor("dit_velocity").to_f32()), 5e-5f);
}

TEST(DemoModel, VaeMatchesTraining) {
  auto c = demo_case();
  auto backend = make_backend(BackendChoice::Cpu);
  auto vae = load_wan_vae("demo", *backend);
  EXPECT_LT(max_abs_diff(vae->decode(c->tensor("vae_latent").to_f32()), c->tensor("vae_video").to_f32()), 1e-5f);
  EXPECT_LT(max_abs_diff(vae->encode(c->tensor("vae_input").to_f32()), c->tensor("vae_mu").to_f32()), 1e-5f);
}

TEST(DemoModel, CardGivesDefaultsAndVocabulary) {
  auto spec = denoiser_spec(*open_store("demo", PartKind::Denoiser), "demo");
  const SamplingDefaults d = spec->defaults();
  EXPECT_EQ(d.width, 128);
  EXPECT_EQ(d.height, 128);
  EXPECT_EQ(d.frames, 9);
  EXPECT_GT(d.steps, 0);
  const std::string example = spec->example_prompt();
  EXPECT_NE(example.find("background"), std::string::npos) << example;
  EXPECT_EQ(spec->prompt_note(example), "");
  EXPECT_EQ(spec->prompt_note("An orange star bouncing on a purple dotted background."), "");
  const std::string note = spec->prompt_note("a red fox running through snow");
  EXPECT_NE(note.find("'fox', 'running', 'through', 'snow' are outside"), std::string::npos) << note;
  const std::string help = spec->prompt_help();
  for (const char* word : {"circle", "moving left", "checkered", "purple"})
    EXPECT_NE(help.find(word), std::string::npos) << word << " missing from:\n" << help;
  // tiny stays what it was: no card, its own defaults, any prompt.
  auto tiny = denoiser_spec(*open_store("tiny", PartKind::Denoiser), "tiny");
  EXPECT_EQ(tiny->prompt_help(), "");
  EXPECT_EQ(tiny->prompt_note("a red fox"), "");
  EXPECT_EQ(tiny->defaults().steps, 10);
  EXPECT_EQ(tiny->defaults().cfg, 5.0);
}

namespace {

class DemoGenerate : public CliTest {
 protected:
  Tensor generate(const std::string& prompt, const std::string& extra, const std::string& name) {
    const std::string out = path(name + "/");
    EXPECT_EQ(run("generate --prompt '" + prompt + "' " + extra + " --out " + out), 0) << err_;
    return read_video_frames(out);
  }
  static float max_diff(const Tensor& a, const Tensor& b) { return max_abs_diff(a, b); }
};

}  // namespace

TEST_F(DemoGenerate, OtherPromptsRunAndSaySo) {
  Tensor frames = generate("a red fox running through fresh snow", "--steps 2", "fox");
  EXPECT_EQ(frames.dim(1), 9);
  EXPECT_NE(err_.find("note: 'fox', 'running', 'through', 'fresh', 'snow' are outside"), std::string::npos) << err_;
  generate("a red circle moving right on a blue background", "--steps 2", "circle");
  EXPECT_EQ(err_.find("note:"), std::string::npos) << err_;
  ASSERT_EQ(shell(binary() + " generate --help >" + path("help.txt")), 0);
  const std::string help = read(path("help.txt"));
  EXPECT_NE(help.find("moving left, moving right"), std::string::npos) << help;
}

TEST_F(DemoGenerate, ParallelLayoutsGiveTheSameVideo) {
  const std::string prompt = "a green star bouncing on a white background";
  Tensor one = generate(prompt, "--steps 4", "one");
  // CFG parallel moves data without arithmetic: the same bytes. Ring attention merges
  // partial softmaxes in another order (latents within ~1e-5), which may move a pixel by one
  // of its 255 levels after decoding.
  EXPECT_EQ(max_diff(one, generate(prompt, "--steps 4 --ranks 2 --cfg-parallel", "cfg")), 0.0f);
  EXPECT_LE(max_diff(one, generate(prompt, "--steps 4 --ranks 2 --ring 2", "ring")), 2.0f / 127.5f + 1e-6f);
}

TEST_F(DemoGenerate, ServerMakesTheCommandLinesVideo) {
  const std::string prompt = "a purple triangle growing on a yellow gradient background";
  Tensor cli = generate(prompt, "--steps 4 --seed 3", "cli");
  const std::string dir = server_test::make_temp_dir("demo_server");
  server_test::ServerProcess server;
  server.start(dir, {"--model", "demo"});
  ASSERT_TRUE(server.wait_ready() && server_test::wait_model(server.port())) << server.log();
  const nlohmann::json request = {{"prompt", prompt}, {"steps", 4}, {"seed", 3}};
  server_test::Reply mp4 = server_test::http(server.port(), "POST", "/v1/generate?wait=1", request.dump());
  ASSERT_EQ(mp4.status, 200) << mp4.body.substr(0, 300);
  const std::string file = dir + "/server.mp4";
  std::ofstream(file, std::ios::binary) << mp4.body;
  // The command line wrote PNG frames, the server an MP4: compare through the MP4 codec.
  ASSERT_EQ(run("generate --prompt '" + prompt + "' --steps 4 --seed 3 --out " + path("cli.mp4")), 0) << err_;
  EXPECT_EQ(max_diff(read_video_frames(file), read_video_frames(path("cli.mp4"))), 0.0f);
  EXPECT_EQ(read_video_frames(file).shape(), cli.shape());
  EXPECT_EQ(server.stop(), 0) << server.log();
  std::filesystem::remove_all(dir);
}
