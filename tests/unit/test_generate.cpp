// raylight generate end to end on the embedded tiny encoder, DiT and VAE (--model tiny: the
// default, demo, has its own tests in test_demo_model.cpp): real files come
// out (read back for frame count and size), the same seed gives the same frames, parallel
// layouts give the frames one rank gives, and mismatched or missing files fail first.
#include <cmath>
#include <filesystem>

#include "cli_runner.h"
#include "io/safetensors.h"
#include "io/video/video_probe.h"
#include "models/wan/wan_tiny.h"

using namespace raylight;
namespace fs = std::filesystem;

namespace {

class Generate : public CliTest {
 protected:
  Tensor frames(const std::string& path) { return read_video_frames(path); }
  static float max_diff(const Tensor& a, const Tensor& b) {
    EXPECT_EQ(a.shape(), b.shape());
    float m = 0;
    for (int64_t i = 0; i < a.numel() && i < b.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
    return m;
  }
  static std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }
};

}  // namespace

TEST_F(Generate, TinyWritesEveryFormat) {
  ASSERT_EQ(run("generate --model tiny --steps 3 --out " + path("v.mp4")), 0) << err_;
  VideoInfo mp4 = probe_video(path("v.mp4"));
  EXPECT_EQ(mp4.frames, 9);
  EXPECT_EQ(mp4.width, 128);
  EXPECT_EQ(mp4.height, 128);
  EXPECT_NE(err_.find("timing: load"), std::string::npos) << err_;
  EXPECT_NE(err_.find("step 3/3"), std::string::npos) << err_;
  ASSERT_EQ(run("generate --model tiny --steps 2 --width 64 --height 48 --frames 5 --out " + path("v.webp")), 0) << err_;
  VideoInfo webp = probe_video(path("v.webp"));
  EXPECT_EQ(webp.width, 64);
  EXPECT_EQ(webp.height, 48);
  ASSERT_EQ(run("generate --model tiny --steps 2 --width 64 --height 48 --frames 5 --out " + path("frames/")), 0) << err_;
  EXPECT_EQ(probe_video(path("frames/")).frames, 5);
}

TEST_F(Generate, SameSeedSameFramesAndLayoutsAgree) {
  const std::string base = "generate --model tiny --steps 3 --width 80 --height 48 --frames 5 --prompt 'a boat' ";
  ASSERT_EQ(run(base + "--out " + path("a/")), 0) << err_;
  ASSERT_EQ(run(base + "--out " + path("b/")), 0) << err_;
  ASSERT_EQ(run(base + "--seed 3 --out " + path("c/")), 0) << err_;
  ASSERT_EQ(run(base + "--ranks 2 --ulysses 2 --out " + path("d/")), 0) << err_;
  ASSERT_EQ(run(base + "--ranks 2 --cfg-parallel --out " + path("e/")), 0) << err_;
  Tensor a = frames(path("a/"));
  EXPECT_EQ(max_diff(a, frames(path("b/"))), 0.0f);
  EXPECT_GT(max_diff(a, frames(path("c/"))), 0.05f);
  EXPECT_EQ(max_diff(a, frames(path("d/"))), 0.0f);
  EXPECT_EQ(max_diff(a, frames(path("e/"))), 0.0f);
  ASSERT_EQ(run(base + "--prompt 'a train' --out " + path("f/")), 0) << err_;
  EXPECT_GT(max_diff(a, frames(path("f/"))), 0.05f) << "the prompt must matter";
}

TEST_F(Generate, MismatchedFilesFailBeforeAnyWork) {
  // The fixture DiT reads 32-wide text; the tiny encoder makes 64.
  EXPECT_EQ(run("generate --model " + fixture("wan_tiny_t2v.safetensors") + " --out " + path("x.mp4")), 2);
  EXPECT_NE(err_.find("outputs 64 features but the DiT"), std::string::npos) << err_;
  EXPECT_EQ(err_.find("step 1/"), std::string::npos) << "sampling started: " << err_;
  // A DiT checkpoint given as the VAE.
  EXPECT_EQ(run("generate --vae " + fixture("wan_tiny_t2v.safetensors") + " --out " + path("x.mp4")), 2);
  EXPECT_NE(err_.find(fixture("wan_tiny_t2v.safetensors")), std::string::npos) << err_;
  EXPECT_EQ(run("generate --text-encoder " + path("missing.safetensors") + " --out " + path("x.mp4")), 2);
  EXPECT_NE(err_.find("does not exist"), std::string::npos) << err_;
  EXPECT_EQ(run("generate --out " + path("x.avi")), 2);
  EXPECT_NE(err_.find(".mp4"), std::string::npos) << err_;
  EXPECT_EQ(err_.find("step 1/"), std::string::npos) << err_;
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename(), "stderr.txt") << "left behind: " << e.path();
}

TEST_F(Generate, FindsComfyUiFiles) {
  const fs::path root = dir_ / "ComfyUI";
  fs::create_directories(root / "models/diffusion_models");
  fs::create_directories(root / "models/text_encoders");
  fs::create_directories(root / "models/vae");
  // A DiT with the tiny encoder's width, written from the embedded weights.
  auto tiny = wan_tiny_weights();
  std::vector<std::pair<std::string, Tensor>> tensors(tiny->tensors().begin(), tiny->tensors().end());
  write_safetensors((root / "models/diffusion_models/wan2.1_t2v_tiny.safetensors").string(), tensors,
                    tiny->metadata());
  fs::copy_file(fixture("umt5_tiny_scaled_fp8.safetensors"), root / "models/text_encoders/umt5_tiny.safetensors");
  fs::copy_file(fixture("wan_vae_tiny.safetensors"), root / "models/vae/wan_2.1_vae.safetensors");
  const std::string flags = " --steps 2 --width 64 --height 32 --frames 5 --out " + path("c/");
  ASSERT_EQ(run("generate --comfyui-dir " + root.string() + flags), 0) << err_;
  EXPECT_EQ(probe_video(path("c/")).frames, 5);
  fs::copy_file(fixture("wan_vae_tiny.safetensors"), root / "models/vae/wan_2.1_vae_copy.safetensors");
  EXPECT_EQ(run("generate --comfyui-dir " + root.string() + flags), 2);
  EXPECT_NE(err_.find("several Wan VAE files"), std::string::npos) << err_;
  EXPECT_NE(err_.find("wan_2.1_vae_copy.safetensors"), std::string::npos) << err_;
  EXPECT_EQ(run("generate --comfyui-dir " + path("nowhere") + flags), 2);
  EXPECT_NE(err_.find("has no models/ folder"), std::string::npos) << err_;
  fs::remove(root / "models/vae/wan_2.1_vae_copy.safetensors");
  // A DiT of another family beside it: the one named as the default family's is taken; alone,
  // the Flux DiT is found (whatever its name) and its own parts are looked for.
  fs::copy_file(fixture("flux_tiny_dev.safetensors"), root / "models/diffusion_models/my_model.safetensors");
  ASSERT_EQ(run("generate --comfyui-dir " + root.string() + flags), 0) << err_;
  fs::remove(root / "models/diffusion_models/wan2.1_t2v_tiny.safetensors");
  EXPECT_EQ(run("generate --comfyui-dir " + root.string() + flags), 2);
  EXPECT_NE(err_.find("T5"), std::string::npos) << err_;
  fs::remove(root / "models/diffusion_models/my_model.safetensors");
  EXPECT_EQ(run("generate --comfyui-dir " + root.string() + flags), 2);
  EXPECT_NE(err_.find("no DiT this build runs found in"), std::string::npos) << err_;
}

// Issue 18: the decode by tiles (--vae-tile) and spread over the ranks gives the frames of
// one whole decode (the Wan VAE's tiles carry their exact context; on the CPU the bound is 0).
TEST_F(Generate, TiledAndRankSpreadDecodesWriteTheSameFrames) {
  const std::string base = "generate --model tiny --steps 2 --width 80 --height 48 --frames 5 --prompt 'a boat' ";
  ASSERT_EQ(run(base + "--out " + path("whole/")), 0) << err_;
  ASSERT_EQ(run(base + "--vae-tile 16x32 --out " + path("tiles/")), 0) << err_;
  // Layouts whose sampling is exact (Ring's is not: fp32 rounding moves a pixel by a level).
  ASSERT_EQ(run(base + "--ranks 4 --ulysses 2 --cfg-parallel --out " + path("r4/")), 0) << err_;
  ASSERT_EQ(run(base + "--ranks 2 --ulysses 2 --vae-tile 24x24 --out " + path("r2/")), 0) << err_;
  Tensor whole = frames(path("whole/"));
  EXPECT_EQ(max_diff(whole, frames(path("tiles/"))), 0.0f);
  EXPECT_EQ(max_diff(whole, frames(path("r4/"))), 0.0f);
  EXPECT_EQ(max_diff(whole, frames(path("r2/"))), 0.0f);
  EXPECT_EQ(run(base + "--vae-tile 20x32 --out " + path("bad/")), 2);
  EXPECT_NE(err_.find("multiples of 8"), std::string::npos) << err_;
}
