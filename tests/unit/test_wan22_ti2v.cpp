// Wan 2.2 TI2V-5B (the "tiny-ti2v" model: the 5B's shapes at toy width, 48 latent channels)
// against tests/fixtures/make_wan22_ti2v_golden.py, an independent float64 forward with one
// timestep per token (checked against the official Wan 2.2 model.py with its [1, seq_len]
// timestep tensor to 6e-7 relative). Image-to-video: frame 0 is the image's latent and its
// tokens run at t = 0; sampling writes the image back into frame 0 at the start and after
// every step, as textimage2video.py's loop (the fixture's float64 loop). The same on 2-4
// CPU ranks under Ulysses and Ring, with token counts that split unevenly (the first
// frame's tokens end inside a rank's rows).
//
// Tolerance: fp32 against float64, as test_wan_golden (5e-5 on velocities of magnitude ~4);
// a timestep applied to the wrong tokens moves the velocity by 0.1 or more.
#include <cmath>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "pipeline/model_loader.h"
#include "pipeline/sample_job.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

// Frames [f0, f1) of [C, F, H, W].
Tensor frames(const Tensor& x, int64_t f0, int64_t f1) {
  const int64_t C = x.dim(0), F = x.dim(1), S = x.dim(2) * x.dim(3);
  Tensor out = Tensor::empty({C, f1 - f0, x.dim(2), x.dim(3)});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t f = f0; f < f1; ++f)
      for (int64_t i = 0; i < S; ++i) out.f32()[(c * (f1 - f0) + f - f0) * S + i] = x.f32()[(c * F + f) * S + i];
  return out;
}

class Ti2v : public CliTest {
 protected:
  std::shared_ptr<SafetensorsFile> golden = SafetensorsFile::open(fixture("wan22_ti2v_tiny_case.safetensors"));

  Tensor forward(const std::string& latent_file, const std::string& context_file, const std::string& extra) {
    const std::string out = path("v.safetensors");
    EXPECT_EQ(run("forward --model tiny-ti2v --latent " + latent_file + " --context " + context_file +
                  " --timestep 700 --out " + out + " " + extra),
              0)
        << extra << "\n"
        << err_;
    return SafetensorsFile::open(out)->tensor("velocity").to_f32();
  }
};

}  // namespace

TEST_F(Ti2v, TheTinyModelIsShapedLikeThe5B) {
  auto w = open_store("tiny-ti2v", PartKind::Denoiser);
  auto spec = denoiser_spec(*w, "tiny-ti2v", "");
  EXPECT_EQ(spec->family(), "Wan 2.2");
  EXPECT_EQ(spec->latent_format().channels, 48);
  EXPECT_EQ(spec->latent_format().comfyui_name, "Wan22");
  EXPECT_EQ(spec->latent_shape({64, 64, 9}), (Shape{48, 3, 4, 4}));  // 16x16 VAE compression
  EXPECT_ANY_THROW(spec->latent_shape({48, 48, 9}));                   // not a multiple of 32
}

TEST_F(Ti2v, ForwardMatchesTheReferenceWithPerTokenTimesteps) {
  const Tensor latent = golden->tensor("latent").to_f32(), image = golden->tensor("first_frame").to_f32();
  write_safetensors(path("ctx.safetensors"), {{"context", golden->tensor("context").to_f32()}});
  // Text-to-video: one timestep for all tokens.
  write_safetensors(path("t2v.safetensors"), {{"latent", latent}});
  const Tensor t2v = forward(path("t2v.safetensors"), path("ctx.safetensors"), "");
  EXPECT_LE(max_abs_diff(t2v, golden->tensor("velocity_t2v").to_f32()), 5e-5f);
  // Image-to-video: the model's own velocity everywhere, frame 0 included (its tokens at t = 0).
  write_safetensors(path("ti2v.safetensors"), {{"latent", latent}, {"first_frame", image}});
  const Tensor v = forward(path("ti2v.safetensors"), path("ctx.safetensors"), "");
  const Tensor want = golden->tensor("velocity_ti2v").to_f32();
  EXPECT_LE(max_abs_diff(v, want), 5e-5f);
  EXPECT_GT(max_abs_diff(frames(v, 1, 3), frames(t2v, 1, 3)), 1e-2f);  // the image is seen
}

TEST_F(Ti2v, SamplingWritesTheImageBackAsTheOfficialLoop) {
  // textimage2video.py's i2v loop on the fixture's noise (float64, Euler steps on the 4-step
  // shift-5 schedule, guidance 5): frame 0 is the image after every step, and frames 1.. are
  // the loop's to fp32 rounding over four steps.
  LoadedModel m = load_model("tiny-ti2v");
  const Tensor image = golden->tensor("first_frame").to_f32();
  SampleOptions o = sample_defaults(*m.spec);
  o.size = {96, 64, 9};  // latent [48, 3, 4, 6]
  o.steps = 4;
  o.shift = 5.0;
  o.cfg = 5.0;
  o.sampler = SamplerKind::Euler;
  const Conditioning pos{{"context", golden->tensor("context").to_f32()}, {"first_frame", image}};
  const Conditioning neg{{"context", golden->tensor("sample_negative").to_f32()}, {"first_frame", image}};
  SampleJob job = make_sample_job(*m.spec, o, pos, neg);
  job.noise = golden->tensor("sample_noise").to_f32().reshape({1, 48, 3, 4, 6});
  const Tensor got = run_sample_job(m, job);
  const Tensor want = golden->tensor("sample_ti2v").to_f32();
  EXPECT_TRUE(max_abs_diff(frames(got, 0, 1), image) == 0.0f);
  EXPECT_LE(max_abs_diff(got, want), 2e-4f);
  // A part of the schedule that ends with noise left has the image in frame 0 too, and every
  // sampler keeps it there.
  for (SamplerKind k : {SamplerKind::Euler, SamplerKind::UniPC, SamplerKind::DPMpp2M}) {
    SampleJob part = job;
    part.sampler = k;
    part.sigmas.resize(3);
    const Tensor x = run_sample_job(m, part);
    EXPECT_TRUE(max_abs_diff(frames(x, 0, 1), image) == 0.0f) << sampler_name(k);
    EXPECT_GT(max_abs_diff(frames(x, 1, 3), frames(want, 1, 3)), 1e-2f);  // noise is left
  }
}

TEST_F(Ti2v, RanksMatchOneRankWithPerTokenTimesteps) {
  // 18 tokens (6 in frame 0) and 30 tokens (15 in frame 0): over 2, 3 and 4 ranks the first
  // frame ends inside a rank's rows or at a rank's edge, and the padding differs.
  write_safetensors(path("ctx.safetensors"), {{"context", golden->tensor("context").to_f32()}});
  for (const Shape& s : {Shape{48, 3, 4, 6}, Shape{48, 2, 6, 10}}) {
    write_safetensors(path("in.safetensors"), {{"latent", gaussian_noise(s, 5)},
                                               {"first_frame", gaussian_noise({48, 1, s[2], s[3]}, 6)}});
    const Tensor one = forward(path("in.safetensors"), path("ctx.safetensors"), "");
    for (const char* layout : {"--ranks 2 --ulysses 2", "--ranks 4 --ulysses 4", "--ranks 3 --ring 3",
                               "--ranks 4 --ulysses 2 --ring 2"}) {
      const Tensor got = forward(path("in.safetensors"), path("ctx.safetensors"), layout);
      EXPECT_LE(max_abs_diff(got, one), 1e-4f) << shape_str(s) << " " << layout;
    }
  }
}

TEST_F(Ti2v, BadFirstFramesAreRefusedByName) {
  write_safetensors(path("ctx.safetensors"), {{"context", golden->tensor("context").to_f32()}});
  write_safetensors(path("bad.safetensors"), {{"latent", gaussian_noise({48, 3, 4, 6}, 1)},
                                              {"first_frame", gaussian_noise({16, 1, 4, 6}, 2)}});
  EXPECT_NE(run("forward --model tiny-ti2v --latent " + path("bad.safetensors") + " --context " +
                path("ctx.safetensors") + " --out " + path("v.safetensors")),
            0);
  EXPECT_NE(err_.find("first_frame"), std::string::npos) << err_;
}
