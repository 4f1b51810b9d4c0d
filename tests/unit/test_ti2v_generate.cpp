// `raylight generate` for Wan 2.2 TI2V on the embedded "tiny-ti2v" (the 5B's shapes at toy
// width, the tiny Wan 2.2 VAE): text-to-video, and image-to-video from --image, whose first
// video frame is the VAE's decode of the encoded picture (the latent's frame 0 lands on it:
// its tokens run at t = 0 and its velocity points at it); the picture fitting (cover +
// centre crop); and the refusals (--image for a model without a start frame, unreadable
// pictures).
#include <cmath>

#include <filesystem>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "io/image/image_writer.h"
#include "io/video/video_probe.h"
#include "models/common/first_frame.h"
#include "models/registry.h"
#include "models/vae/wan22_vae.h"
#include "models/vae/wan22_vae_tiny.h"
#include "models/vae/wan_vae_tiny.h"
#include "pipeline/comfyui_files.h"
#include "models/wan/wan_tiny.h"

using namespace raylight;

namespace {

// A smooth picture [3, h, w] in [-1, 1].
Tensor gradient(int64_t h, int64_t w) {
  Tensor t = Tensor::empty({3, h, w});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        t.f32()[(c * h + y) * w + x] = static_cast<float>(0.8 * std::sin(0.11 * x * (c + 1) + 0.07 * y) * (c == 1 ? -1 : 1));
  return t;
}

float max_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

class Ti2vGenerate : public CliTest {};

}  // namespace

TEST_F(Ti2vGenerate, TextToVideo) {
  ASSERT_EQ(run("generate --model tiny-ti2v --steps 2 --width 64 --height 96 --frames 5 --out " + path("t2v/")), 0)
      << err_;
  const VideoInfo info = probe_video(path("t2v/"));
  EXPECT_EQ(info.frames, 5);
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 96);
}

TEST_F(Ti2vGenerate, ImageToVideoStartsFromThePicture) {
  const Tensor picture = gradient(80, 120);  // wider than the video: scaled to cover, cropped
  write_image(path("start.png"), picture);
  ASSERT_EQ(run("generate --model tiny-ti2v --steps 3 --width 64 --height 64 --frames 5 --image " +
                path("start.png") + " --out " + path("i2v/")),
            0)
      << err_;
  const Tensor video = read_video_frames(path("i2v/"));
  ASSERT_EQ(video.shape(), (Shape{3, 5, 64, 64}));
  // What frame 0 must be: the decode of the picture's latent (the first latent frame alone
  // decodes the first video frame: the VAE is causal), from the PNG's bytes as read.
  auto cpu = make_cpu_backend();
  auto codec = make_latent_codec(std::unique_ptr<WeightStore>(wan22_vae_tiny_weights()), *cpu, "tiny");
  Tensor read_back = Tensor::empty(picture.shape());
  for (int64_t i = 0; i < picture.numel(); ++i)
    read_back.f32()[i] = std::round((picture.f32()[i] + 1.0f) * 127.5f) / 127.5f - 1.0f;
  const Tensor z = encode_first_frame(read_back, {48, 2, 4, 4}, *codec);
  const Tensor want = codec->decode(z);  // [3, 1, 64, 64]
  Tensor first = Tensor::empty({3, 1, 64, 64});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 64 * 64; ++i) first.f32()[c * 64 * 64 + i] = video.f32()[(c * 5) * 64 * 64 + i];
  EXPECT_LE(max_diff(first, want), 2.0f / 255 + 1e-3f);  // the written file's 8-bit rounding
  // Text-to-video from the same seed starts elsewhere.
  ASSERT_EQ(run("generate --model tiny-ti2v --steps 3 --width 64 --height 64 --frames 5 --out " + path("t2v/")), 0);
  const Tensor t2v = read_video_frames(path("t2v/"));
  Tensor t2v_first = Tensor::empty({3, 1, 64, 64});
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 64 * 64; ++i) t2v_first.f32()[c * 64 * 64 + i] = t2v.f32()[(c * 5) * 64 * 64 + i];
  EXPECT_GT(max_diff(t2v_first, want), 0.05f);
}

TEST_F(Ti2vGenerate, PicturesAreFittedByCoverAndCentreCrop) {
  // A picture already at the size passes unchanged (Lanczos at scale 1 is the identity).
  const Tensor p = gradient(32, 48);
  EXPECT_LE(max_diff(fit_picture_cover(p, 48, 32), p), 1e-6f);
  // Twice as wide as asked: the middle half of the columns, at scale 1.
  const Tensor wide = gradient(32, 96), mid = fit_picture_cover(wide, 48, 32);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 32; ++y)
      for (int64_t x = 0; x < 48; ++x)
        ASSERT_NEAR(mid.f32()[(c * 32 + y) * 48 + x], wide.f32()[(c * 32 + y) * 96 + x + 24], 1e-6f);
}

TEST_F(Ti2vGenerate, ImagesAreRefusedWhereTheyCannotBeUsed) {
  write_image(path("start.png"), gradient(64, 64));
  EXPECT_EQ(run("generate --model tiny --steps 1 --width 64 --height 64 --frames 5 --image " + path("start.png") +
                " --out " + path("x/")),
            2);
  EXPECT_NE(err_.find("takes no image"), std::string::npos) << err_;
  EXPECT_EQ(run("generate --model tiny-ti2v --steps 1 --width 64 --height 64 --frames 5 --image " +
                path("start.png") + " --image " + path("start.png") + " --out " + path("x/")),
            2);
  EXPECT_NE(err_.find("one start frame"), std::string::npos) << err_;
  {
    std::ofstream(path("not.png")) << "not a picture";
  }
  EXPECT_EQ(run("generate --model tiny-ti2v --steps 1 --width 64 --height 64 --frames 5 --image " + path("not.png") +
                " --out " + path("x/")),
            2);
  EXPECT_NE(err_.find(path("not.png")), std::string::npos) << err_;
  EXPECT_EQ(run("generate --model tiny-ti2v --steps 1 --image " + path("missing.png") + " --out " + path("x/")), 2);
  EXPECT_NE(err_.find("missing.png"), std::string::npos) << err_;
}

TEST_F(Ti2vGenerate, FindsTheTi2vFilesInAComfyUiFolder) {
  namespace fs = std::filesystem;
  const fs::path root = dir_ / "ComfyUI";
  for (const char* d : {"models/diffusion_models", "models/text_encoders", "models/vae"}) fs::create_directories(root / d);
  auto put = [](const fs::path& file, const std::unique_ptr<MemoryWeights>& w) {
    std::vector<std::pair<std::string, Tensor>> tensors(w->tensors().begin(), w->tensors().end());
    write_safetensors(file.string(), tensors, w->metadata());
  };
  auto dit = wan_tiny_ti2v_weights();
  auto meta = dit->metadata();
  meta.erase("raylight.embedded");  // a checkpoint, not the embedded model
  dit->set_metadata(meta);
  put(root / "models/diffusion_models/wan2.2_ti2v_5B_fp16.safetensors", dit);
  put(root / "models/vae/wan2.2_vae.safetensors", wan22_vae_tiny_weights());
  // Both VAEs are in ComfyUI's folder: the one with the DiT's 48 channels is taken.
  put(root / "models/vae/wan_2.1_vae.safetensors", wan_vae_tiny_weights());
  fs::copy_file(std::string(RAYLIGHT_FIXTURE_DIR) + "/umt5_tiny_scaled_fp8.safetensors",
                root / "models/text_encoders/umt5_tiny.safetensors");
  ASSERT_EQ(run("generate --comfyui-dir " + root.string() +
                " --steps 2 --width 64 --height 32 --frames 5 --out " + path("c/")),
            0)
      << err_;
  EXPECT_NE(err_.find("Wan2.2 TI2V"), std::string::npos) << err_;
  const VideoInfo info = probe_video(path("c/"));
  EXPECT_EQ(info.frames, 5);
  EXPECT_EQ(info.width, 64);
  // A Wan 2.1 DiT in the same folder takes the 16-channel VAE (both names hold "wan", "vae").
  auto wan21 = wan_tiny_weights();
  put(root / "models/diffusion_models/wan2.1_t2v_tiny.safetensors", wan21);
  ModelFiles f;
  f.model = (root / "models/diffusion_models/wan2.1_t2v_tiny.safetensors").string();
  EXPECT_EQ(find_comfyui_files(root.string(), f, "").parts.codec, (root / "models/vae/wan_2.1_vae.safetensors").string());
  f.model = (root / "models/diffusion_models/wan2.2_ti2v_5B_fp16.safetensors").string();
  EXPECT_EQ(find_comfyui_files(root.string(), f, "").parts.codec, (root / "models/vae/wan2.2_vae.safetensors").string());
}

TEST_F(Ti2vGenerate, TheDecodeSpreadOverRanksGivesTheOneRankFrames) {
  // 160x96 pixels: a 10x6 latent in 32x32-pixel tiles (2x2 latent) = 15 tiles, uneven over 2
  // and 4 ranks; Ulysses sampling moves data without arithmetic, so the frames are equal.
  write_image(path("start.png"), gradient(96, 128));
  const std::string base = "generate --model tiny-ti2v --steps 2 --width 160 --height 96 --frames 5 --vae-tile 32x32 --image " +
                           path("start.png");
  ASSERT_EQ(run(base + " --out " + path("one/")), 0) << err_;
  const Tensor one = read_video_frames(path("one/"));
  for (const char* layout : {"--ranks 2 --ulysses 2", "--ranks 4 --ulysses 4"}) {
    ASSERT_EQ(run(base + " " + layout + " --out " + path("many/")), 0) << layout << "\n" << err_;
    EXPECT_EQ(max_diff(read_video_frames(path("many/")), one), 0.0f) << layout;
  }
}
