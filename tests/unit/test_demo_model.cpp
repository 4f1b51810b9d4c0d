// The embedded demo model (src/models/demo): first, that the engine computes what PyTorch
// trained. tests/fixtures/demo_case.safetensors holds float64 outputs of the training code's
// own modules (training/demo/export.py) on the shipped bf16 weights: the tiny umT5 the DiT
// was conditioned on (there regenerated from the documented noise generator), a DiT velocity
// and a VAE decode and encode. We compute in fp32, so the tolerances are fp32 rounding (the
// Wan golden tests' 5e-5 on velocities, 1e-5 on the video, 2e-5 on text); a weight under the
// wrong name, a transposed tensor or a missed metadata field moves outputs by O(1). And the
// model card sets the defaults, the vocabulary and the out-of-vocabulary note.
// What the generated videos show is test_demo_generate.cpp's.
#include <gtest/gtest.h>

#include "backend/backend_select.h"
#include "io/safetensors.h"
#include "models/registry.h"
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
  // The defaults training/demo/README.md chose with a sweep (and `generate --help` states).
  EXPECT_EQ(d.steps, 10);
  EXPECT_EQ(d.cfg, 3.0);
  EXPECT_EQ(d.shift, 3.0);
  EXPECT_EQ(d.sampler, SamplerKind::UniPC);
  EXPECT_EQ(d.fps, 8.0);
  const std::string example = spec->example_prompt();
  EXPECT_EQ(example, "a white circle growing on a purple gradient background");
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
