// Flux.1 behind the family seam: the DiT forward against goldens from the independent
// float64 PyTorch implementation in tests/fixtures/make_flux_golden.py (itself checked
// against the official black-forest-labs/flux code), dev and schnell; the shift rule
// against the official get_schedule; every parallel layout against one rank; sampling
// through the command line; variants by file name.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "models/flux/flux_model.h"
#include "models/registry.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "sampling/schedule.h"
#include "../error_of.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

Conditioning case_conditioning(const SafetensorsFile& c) {
  Conditioning cond{{"context", c.tensor("context").to_f32()}, {"pooled", c.tensor("pooled").to_f32()}};
  if (c.has("guidance")) cond["guidance"] = c.tensor("guidance").to_f32();
  return cond;
}

Tensor golden_forward(const std::string& variant) {
  LoadedModel m = load_model(fixture("flux_tiny_" + variant + ".safetensors"));
  auto c = SafetensorsFile::open(fixture("flux_tiny_" + variant + "_case.safetensors"));
  const Conditioning cond = m.spec->check_conditioning(case_conditioning(*c), c->tensor("latent").shape());
  const double t = c->tensor("timestep").to_f32().f32()[0];
  return m.denoiser->predict(c->tensor("latent").to_f32(), t, *m.denoiser->prepare(cond));
}

}  // namespace

TEST(FluxGolden, DevMatchesReference) {
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  EXPECT_LT(max_abs_diff(golden_forward("dev"), c->tensor("velocity").to_f32()), 5e-5f);
}

TEST(FluxGolden, SchnellMatchesReference) {
  auto c = SafetensorsFile::open(fixture("flux_tiny_schnell_case.safetensors"));
  EXPECT_LT(max_abs_diff(golden_forward("schnell"), c->tensor("velocity").to_f32()), 5e-5f);
}

TEST(FluxGolden, GuidanceAndPooledMatter) {
  LoadedModel m = load_model(fixture("flux_tiny_dev.safetensors"));
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  const Tensor latent = c->tensor("latent").to_f32();
  Conditioning cond = case_conditioning(*c);
  const Tensor base = m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(cond));
  cond["guidance"] = Tensor::from_vector({1}, {1.5f});
  EXPECT_GT(max_abs_diff(m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(cond)), base), 1e-3f);
  cond = case_conditioning(*c);
  cond["pooled"] = Tensor::zeros({24});
  EXPECT_GT(max_abs_diff(m.denoiser->predict(latent, 700.0, *m.denoiser->prepare(cond)), base), 1e-3f);
}

TEST(FluxSpec, ShiftRuleIsTheOfficialSchedule) {
  auto spec = denoiser_spec(*open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux1-dev");
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  // 12 image tokens (a [16, 6, 8] latent) and 4096 (1024x1024).
  for (const auto& [name, item, steps] : {std::tuple{"schedule_4_12", Shape{16, 6, 8}, 4},
                                          std::tuple{"schedule_20_4096", Shape{16, 128, 128}, 20}}) {
    const Tensor want = c->tensor(name).to_f32();
    const std::vector<double> got = flow_sigmas(steps, spec->default_shift(item));
    ASSERT_EQ(static_cast<int64_t>(got.size()), want.numel()) << name;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want.f32()[i], 1e-6) << name << " step " << i;
  }
  const SamplingDefaults d = spec->defaults();
  EXPECT_EQ(d.width, 1024);
  EXPECT_EQ(d.frames, 1);
  EXPECT_EQ(d.steps, 20);
  EXPECT_EQ(d.cfg, 1.0);
  EXPECT_EQ(d.guidance, 3.5);
  EXPECT_EQ(spec->latent_format().comfyui_name, "Flux");
  EXPECT_EQ(spec->latent_format().item_rank, 3);
  EXPECT_EQ(spec->latent_shape({1024, 768, 1}), (Shape{16, 96, 128}));
  EXPECT_NE(error_of([&] { spec->latent_shape({64, 64, 5}); }).find("makes images: frames must be 1"), std::string::npos);
  EXPECT_EQ(spec->block_of("double_blocks.1.img_mlp.0.weight"), 1);
  EXPECT_EQ(spec->block_of("single_blocks.1.linear1.weight"), 3);
  EXPECT_EQ(spec->block_of("final_layer.linear.weight"), -1);
  auto schnell = denoiser_spec(*open_store(fixture("flux_tiny_schnell.safetensors"), PartKind::Denoiser), "s");
  EXPECT_EQ(schnell->defaults().steps, 4);
  EXPECT_EQ(schnell->default_shift({16, 128, 128}), 1.0);
  EXPECT_EQ(schnell->defaults().guidance, 0.0);
}

TEST(FluxSpec, ConditioningIsCheckedByName) {
  auto spec = denoiser_spec(*open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "f");
  const Shape item{16, 6, 8};
  const Conditioning ok{{"context", Tensor::zeros({1, 5, 32})}, {"pooled", Tensor::zeros({1, 24})},
                        {"guidance", Tensor::from_vector({1}, {3.5f})}};
  const Conditioning c = spec->check_conditioning(ok, item);
  EXPECT_EQ(c.at("context").shape(), (Shape{5, 32}));
  EXPECT_EQ(c.at("pooled").shape(), (Shape{24}));
  Conditioning bad = ok;
  bad.erase("pooled");
  EXPECT_NE(error_of([&] { spec->check_conditioning(bad, item); }).find("tensor 'pooled' [24] is required"),
            std::string::npos);
  bad = ok;
  bad["context"] = Tensor::zeros({513, 32});
  EXPECT_NE(error_of([&] { spec->check_conditioning(bad, item); }).find("1 to 512 tokens"), std::string::npos);
  bad = ok;
  bad["y"] = Tensor::zeros({1});
  EXPECT_NE(error_of([&] { spec->check_conditioning(bad, item); }).find("tensor 'y' is not an input"), std::string::npos);
  bad = ok;
  bad["guidance"] = Tensor::from_vector({1}, {std::nanf("")});
  EXPECT_NE(error_of([&] { spec->check_conditioning(bad, item); }).find("NaN"), std::string::npos);
}

TEST(FluxSpec, VariantsWithTheSameTensorsAreNamedByFileOrFlag) {
  auto store = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  EXPECT_NE(denoiser_spec(*store, "models/flux1-kontext-dev.safetensors")->variant_note().find("Chosen: flux1-kontext-dev by the file name"),
            std::string::npos);
  EXPECT_NE(denoiser_spec(*store, "flux1-krea-dev_fp8_scaled.safetensors")->variant_note().find("Chosen: flux1-krea-dev"),
            std::string::npos);
  EXPECT_NE(denoiser_spec(*store, "flux1-kontext-dev.safetensors", "flux1-dev")->variant_note().find("flux1-dev by --variant"),
            std::string::npos);
  EXPECT_NE(error_of([&] { denoiser_spec(*store, "x.safetensors", "flux1-schnell"); }).find("it can be: flux1-dev"),
            std::string::npos);
  auto schnell = open_store(fixture("flux_tiny_schnell.safetensors"), PartKind::Denoiser);
  EXPECT_EQ(denoiser_spec(*schnell, "s.safetensors")->variant_note(), "");
}

class FluxCli : public CliTest {
 protected:
  Tensor forward(const std::string& flags, const std::string& variant = "dev") {
    const std::string out = path("v.safetensors");
    const std::string model = fixture("flux_tiny_" + variant + ".safetensors");
    const std::string c = fixture("flux_tiny_" + variant + "_case.safetensors");
    EXPECT_EQ(run("forward --model " + model + " --latent " + c + " --context " + c + " --timestep 700 " + flags +
                  " --out " + out),
              0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("velocity").to_f32();
  }
  Tensor sample(const std::string& flags, const std::string& name) {
    const std::string out = path(name + ".safetensors");
    const std::string c = fixture("flux_tiny_dev_case.safetensors");
    EXPECT_EQ(run("sample --model " + fixture("flux_tiny_dev.safetensors") + " --context " + c +
                  " --width 64 --height 48 --steps 3 " + flags + " --out " + out),
              0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("latent").to_f32();
  }
};

TEST_F(FluxCli, ForwardOnEveryLayoutMatchesTheGolden) {
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  const Tensor golden = c->tensor("velocity").to_f32();
  const Tensor one = forward("");
  EXPECT_LT(max_abs_diff(one, golden), 5e-5f);
  // Text (5 tokens) and image (12) split unevenly: padding in both segments is masked.
  for (const char* exact : {"--ranks 2 --ulysses 2", "--ranks 2 --fsdp", "--offload", "--ranks 2 --fsdp --offload"})
    EXPECT_EQ(max_abs_diff(forward(exact), one), 0.0f) << exact;
  for (const char* ring : {"--ranks 2 --ring 2", "--ranks 3 --ring 3", "--ranks 4 --ulysses 2 --ring 2"})
    EXPECT_LT(max_abs_diff(forward(ring), one), 1e-5f) << ring;
  EXPECT_LT(max_abs_diff(forward("", "schnell"),
                         SafetensorsFile::open(fixture("flux_tiny_schnell_case.safetensors"))->tensor("velocity").to_f32()),
            5e-5f);
}

TEST_F(FluxCli, SamplesImagesWithGuidanceOnEveryLayout) {
  const Tensor ref = sample("", "ref");
  EXPECT_EQ(ref.shape(), (Shape{16, 6, 8}));
  EXPECT_GT(max_abs_diff(sample("--guidance 1.5", "g"), ref), 1e-3f) << "guidance must matter";
  EXPECT_EQ(max_abs_diff(sample("--ranks 2 --ulysses 2", "u"), ref), 0.0f);
  EXPECT_LT(max_abs_diff(sample("--ranks 2 --ring 2", "r"), ref), 1e-4f);
  const Tensor two = sample("--ranks 2 --dp 2 --seed 5", "dp");
  EXPECT_EQ(two.shape(), (Shape{2, 16, 6, 8}));
  EXPECT_EQ(max_abs_diff(two.reshape({2, -1}).slice_rows(1, 2).reshape({16, 6, 8}), sample("--seed 6", "s6")), 0.0f);
  EXPECT_EQ(run("sample --model " + fixture("flux_tiny_schnell.safetensors") + " --context " +
                fixture("flux_tiny_schnell_case.safetensors") + " --width 64 --height 48 --guidance 2 --out " +
                path("x.safetensors")),
            2);
  EXPECT_NE(err_.find("takes no guidance input"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --model " + fixture("flux_tiny_dev.safetensors") + " --context " +
                fixture("flux_tiny_dev_case.safetensors") + " --frames 5 --out " + path("x.safetensors")),
            2);
  EXPECT_NE(err_.find("frames must be 1"), std::string::npos) << err_;
}
