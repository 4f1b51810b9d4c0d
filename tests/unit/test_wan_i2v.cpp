// Wan image-to-video (issue 16) and the Wan 2.2 I2V experts (issue 17): the conditioning
// (fitted frames, frame mask, y) against tests/fixtures/make_wan_i2v_golden.py's float64
// reference (itself checked against the official image2video.py / first_last_frame2video.py
// steps), the FLF2V and Wan 2.2 I2V forwards against the same script's goldens (checked
// there against the official model.py), `generate --image` on 1 to 4 CPU ranks, and the
// refusals of bad inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>

#include "backend/backend_select.h"
#include "cli_runner.h"
#include "core/error.h"
#include "io/image/image_reader.h"
#include "io/image/image_writer.h"
#include "io/safetensors.h"
#include "io/video/video_probe.h"
#include "models/registry.h"
#include "models/wan/wan_image_condition.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "sampling/noise.h"
#include "../part_loaders.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct ConditionCase {
  std::shared_ptr<SafetensorsFile> file;
  Tensor t(const char* name) const { return file->tensor(name).to_f32(); }
};

ConditionCase condition_case() { return {SafetensorsFile::open(fixture("wan_i2v_condition_case.safetensors"))}; }

// A Wan 2.2 I2V-like config (y, no CLIP) or, with clip tokens, an FLF2V one.
WanConfig condition_config(int64_t flf_tokens = 0) {
  WanConfig c;
  c.in_dim = 36;
  if (flf_tokens) c.clip_dim = 32, c.first_last_frame = true, c.image_tokens = flf_tokens;
  return c;
}

}  // namespace

TEST(WanImageCondition, FittedFramesMatchTheReferenceCropAndBicubic) {
  const ConditionCase c = condition_case();
  // 70x40 to 48x32: cropped at the sides; 36x50 to 48x32: cropped top and bottom.
  EXPECT_LT(max_abs_diff(wan_fit_frame(c.t("image"), 32, 48), c.t("fitted_first")), 1e-5f);
  EXPECT_LT(max_abs_diff(wan_fit_frame(c.t("last_image"), 32, 48), c.t("fitted_last")), 1e-5f);
}

TEST(WanImageCondition, FrameMasksAreTheReferenceLayout) {
  const ConditionCase c = condition_case();
  EXPECT_EQ(max_abs_diff(wan_frame_mask(9, 4, 6, false), c.t("mask_i2v")), 0.0f);
  EXPECT_EQ(max_abs_diff(wan_frame_mask(9, 4, 6, true), c.t("mask_flf")), 0.0f);
  // Frame 0 fills latent frame 0 (all four channels); the last frame only channel 3 of the last.
  const Tensor m = wan_frame_mask(81, 1, 1, true);
  ASSERT_EQ(m.shape(), (Shape{4, 21, 1, 1}));
  for (int64_t ch = 0; ch < 4; ++ch)
    for (int64_t f = 0; f < 21; ++f)
      EXPECT_EQ(m.f32()[ch * 21 + f], f == 0 || (f == 20 && ch == 3) ? 1.0f : 0.0f) << ch << " " << f;
}

TEST(WanImageCondition, YMatchesTheReferenceForAStartFrameAndForFirstAndLastFrames) {
  const ConditionCase c = condition_case();
  auto backend = make_backend(BackendChoice::Cpu);
  auto vae = make_latent_codec(open_store(fixture("wan_vae_tiny.safetensors"), PartKind::LatentCodec), *backend,
                               "wan_vae_tiny");
  const Shape item{16, 3, 4, 6};  // 9 frames of 48x32
  const Conditioning i2v = wan_image_conditioning(condition_config(), {c.t("image")}, item, *vae, nullptr);
  EXPECT_EQ(i2v.count("clip_fea"), 0u);  // no CLIP branch
  EXPECT_LT(max_abs_diff(i2v.at("y"), c.t("y_i2v")), 1e-4f);

  // FLF2V: y with both frames, and the first then the last frame's CLIP tokens.
  auto clip = make_image_encoder(open_store(fixture("clip_vision_tiny.safetensors"), PartKind::ImageEncoder), *backend,
                                 "clip_vision_tiny");
  const Conditioning flf =
      wan_image_conditioning(condition_config(34), {c.t("image"), c.t("last_image")}, item, *vae, clip.get());
  EXPECT_LT(max_abs_diff(flf.at("y"), c.t("y_flf")), 1e-4f);
  const Tensor first = clip->encode(c.t("image")).at("clip_fea");
  const Tensor last = clip->encode(c.t("last_image")).at("clip_fea");
  const Tensor fea = flf.at("clip_fea");
  ASSERT_EQ(fea.shape(), (Shape{34, 32}));
  EXPECT_EQ(max_abs_diff(fea.slice_rows(0, 17).clone(), first), 0.0f);
  EXPECT_EQ(max_abs_diff(fea.slice_rows(17, 34).clone(), last), 0.0f);

  // The counts a model takes, said in its words.
  EXPECT_NE(error_of([&] { wan_image_conditioning(condition_config(), {}, item, *vae, nullptr); }).find("one start frame"),
            std::string::npos);
  EXPECT_NE(error_of([&] { wan_image_conditioning(condition_config(34), {c.t("image")}, item, *vae, clip.get()); })
                .find("--last-image"),
            std::string::npos);
  Tensor nan = c.t("image").clone();
  nan.f32()[5] = std::nanf("");
  EXPECT_NE(error_of([&] { wan_image_conditioning(condition_config(), {nan}, item, *vae, nullptr); }).find("NaN or infinite"),
            std::string::npos);
}

TEST(WanGolden, FirstLastFrameMatchesReference) {
  LoadedModel m = load_model(fixture("wan_tiny_flf2v.safetensors"));
  EXPECT_TRUE(wan_of(m).config().first_last_frame);
  EXPECT_EQ(wan_of(m).config().image_tokens, 10);
  EXPECT_EQ(m.spec->image_inputs().max_images, 2);
  auto c = SafetensorsFile::open(fixture("wan_tiny_flf2v_case.safetensors"));
  const Tensor v = wan_of(m).forward(wan_case_inputs(*c));
  EXPECT_LT(max_abs_diff(v, c->tensor("velocity").to_f32()), 5e-5f);
  // The two frames' tokens are fixed by emb_pos.
  WanInputs in = wan_case_inputs(*c);
  in.clip_fea = in.clip_fea.slice_rows(0, 5).clone();
  EXPECT_NE(error_of([&] { wan_of(m).forward(in); }).find("[10, 16]"), std::string::npos);
}

TEST(WanGolden, Wan22ImageToVideoWithoutClipMatchesReference) {
  LoadedModel m = load_model(fixture("wan_tiny_i2v22.safetensors"));
  EXPECT_FALSE(wan_of(m).config().image_to_video());
  EXPECT_TRUE(wan_of(m).config().takes_y());
  auto c = SafetensorsFile::open(fixture("wan_tiny_i2v22_case.safetensors"));
  const Tensor v = wan_of(m).forward(wan_case_inputs(*c));
  EXPECT_LT(max_abs_diff(v, c->tensor("velocity").to_f32()), 5e-5f);
  // y only: CLIP features are refused, y is required.
  EXPECT_NE(error_of([&] { m.spec->check_conditioning({{"context", c->tensor("context")}}, {16, 2, 4, 6}); })
                .find("'y' is required"),
            std::string::npos);
}

// `raylight generate --image` end to end on tiny random models: the tiny DiT widened to the
// I2V inputs (36 channels, a CLIP branch of the tiny CLIP's width), the embedded umT5 and
// VAE, the tiny CLIP vision fixture.
class I2VGenerate : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    i2v_ = write_model("i2v.safetensors", 32, 0);
    flf_ = write_model("flf.safetensors", 32, 34);
    t2v22_high_ = write_model("wan2.2_i2v_high_noise_tiny.safetensors", 0, 0);
    t2v22_low_ = write_model("wan2.2_i2v_low_noise_tiny.safetensors", 0, 0, 0.05f);
    Tensor pic = gaussian_noise({3, 40, 56}, 11);
    for (int64_t i = 0; i < pic.numel(); ++i) pic.f32()[i] = std::tanh(pic.f32()[i]);
    write_image(path("start.png"), pic);
    write_image(path("end.png"), gaussian_noise({3, 30, 30}, 12));
  }
  // The tiny DiT's recipe at I2V shapes; `clip` 0: no CLIP branch (Wan 2.2 I2V).
  std::string write_model(const std::string& name, int64_t clip, int64_t flf_tokens, float nudge = 0) {
    WanConfig c = wan_tiny_config();
    c.in_dim = 36;
    c.clip_dim = clip;
    if (flf_tokens) c.first_last_frame = true, c.image_tokens = flf_tokens;
    auto w = wan_random_weights(c);
    std::vector<std::pair<std::string, Tensor>> tensors;
    uint64_t seed = 500;
    for (const auto& [n, t] : w->tensors()) {
      Tensor v = t.clone();
      if (nudge != 0) {
        Tensor e = gaussian_noise(v.shape(), seed++);
        for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] += nudge * e.f32()[i];
      }
      tensors.emplace_back(n, v);
    }
    write_safetensors(path(name), tensors, {{"raylight.num_heads", "4"}});
    return path(name);
  }
  // generate into a PNG folder; the frames as [3, F, H, W].
  Tensor generate(const std::string& model, const std::string& extra, const std::string& name) {
    const std::string out = path(name) + "/";
    EXPECT_EQ(run("generate --model " + model + " --text-encoder tiny --vae tiny --steps 3 --width 32 --height 32 "
                  "--frames 5 --prompt 'a fox' " + extra + " --out " + out),
              0)
        << err_;
    return read_video_frames(out);
  }
  std::string clip() const { return " --clip-vision " + fixture("clip_vision_tiny.safetensors"); }
  std::string i2v_, flf_, t2v22_high_, t2v22_low_;
};

TEST_F(I2VGenerate, OneRankAndEveryLayoutMakeTheSameVideo) {
  const std::string image = " --image " + path("start.png") + clip();
  const Tensor one = generate(i2v_, image, "one");
  ASSERT_EQ(one.shape(), (Shape{3, 5, 32, 32}));
  for (const char* layout : {"--ranks 2 --ulysses 2", "--ranks 2 --cfg-parallel", "--ranks 4 --ulysses 4",
                             "--ranks 4 --cfg-parallel --ulysses 2"}) {
    const Tensor other = generate(i2v_, image + " " + layout, "l");
    EXPECT_EQ(max_abs_diff(other, one), 0.0f) << layout;
  }
  // The start frame conditions the video: another picture, another video.
  write_image(path("other.png"), gaussian_noise({3, 32, 32}, 99));
  const Tensor changed = generate(i2v_, " --image " + path("other.png") + clip(), "changed");
  EXPECT_GT(max_abs_diff(changed, one), 0.0f);
}

TEST_F(I2VGenerate, FirstLastFrameOnOneAndTwoRanks) {
  const std::string images = " --image " + path("start.png") + " --last-image " + path("end.png") + clip();
  const Tensor one = generate(flf_, images, "one");
  EXPECT_EQ(max_abs_diff(generate(flf_, images + " --ranks 2 --ulysses 2", "two"), one), 0.0f);
}

TEST_F(I2VGenerate, Wan22ExpertPairTakesAStartFrameWithoutClip) {
  const std::string args = " --model-low " + t2v22_low_ + " --image " + path("start.png");
  const Tensor one = generate(t2v22_high_, args, "one");
  EXPECT_EQ(max_abs_diff(generate(t2v22_high_, args + " --ranks 2 --ulysses 2", "two"), one), 0.0f);
}

TEST_F(I2VGenerate, BadInputsAreRefusedBeforeAnyWork) {
  const std::string base = " --text-encoder tiny --vae tiny --steps 1 --width 32 --height 32 --frames 5 --out " +
                           path("o.mp4");
  auto refused = [&](const std::string& args, const std::string& says) {
    EXPECT_EQ(run("generate " + args + base), 2) << args;
    EXPECT_NE(err_.find(says), std::string::npos) << args << ": " << err_;
  };
  refused("--model " + i2v_ + clip(), "is an image-to-video model: give a start frame with --image FILE");
  refused("--model tiny --image " + path("start.png"), "takes no image");
  refused("--model " + i2v_ + clip() + " --image " + path("start.png") + " --last-image " + path("end.png"),
          "--last-image needs a first-last-frame model");
  refused("--model " + flf_ + clip() + " --image " + path("start.png"), "give the last frame too");
  refused("--model " + i2v_ + " --image " + path("start.png"), "--clip-vision");
  std::ofstream(path("junk.png")) << "not a picture at all";
  refused("--model " + i2v_ + clip() + " --image " + path("junk.png"), "not a PNG, WebP or JPEG picture");
  refused("--model " + i2v_ + clip() + " --image " + path("nowhere.png"), "does not exist");
  refused("--model " + i2v_ + clip() + " --image " + dir_.string(), "not a regular file");
  EXPECT_FALSE(std::filesystem::exists(path("o.mp4")));
}

TEST(ImageReader, ReadsWhatTheWriterWroteAndRefusesDamagedFiles) {
  const auto dir = std::filesystem::temp_directory_path() / ("raylight_imgread_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  Tensor pic = gaussian_noise({3, 7, 9}, 3);
  for (int64_t i = 0; i < pic.numel(); ++i) pic.f32()[i] = std::tanh(pic.f32()[i]);
  const std::string png = (dir / "p.png").string();
  write_image(png, pic);
  const Tensor back = read_image(png);
  ASSERT_EQ(back.shape(), pic.shape());
  EXPECT_LE(max_abs_diff(back, pic), 1.0f / 127.5f);  // 8-bit rounding
  // Cut short, a PNG is refused with a message naming the file.
  const std::string bytes = CliTest::read(png);
  std::ofstream((dir / "cut.png").string(), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const std::string msg = error_of([&] { read_image((dir / "cut.png").string()); });
  EXPECT_NE(msg.find("cut.png"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { decode_image({}, "empty"); }).find("empty"), std::string::npos);
  std::filesystem::remove_all(dir);
}
