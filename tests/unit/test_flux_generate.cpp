// raylight generate on the embedded tiny Flux (tiny-flux: the MMDiT, the tiny umT5 padded to
// 512 tokens, the tiny CLIP's pooled vector, the tiny Flux VAE): a picture comes out of the
// whole pipeline (read back with libpng), its pixels are pinned, the same seed gives the same
// picture, guidance and seeds change it, and wrong parts or outputs fail before any work.
#include <png.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <vector>

#include "cli_runner.h"
#include "models/registry.h"

using namespace raylight;
namespace fs = std::filesystem;

namespace {

struct Picture {
  uint32_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

Picture read_png(const std::string& path) {
  Picture p;
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) return p;
  image.format = PNG_FORMAT_RGB;
  p.rgb.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, p.rgb.data(), 0, nullptr)) return {};
  p.width = image.width;
  p.height = image.height;
  return p;
}

// FNV-1a of the pixel bytes: the picture's identity, independent of the PNG encoder.
uint64_t fnv(const std::vector<uint8_t>& b) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t c : b) h = (h ^ c) * 1099511628211ull;
  return h;
}

double mean_abs_diff(const Picture& a, const Picture& b) {
  if (a.rgb.size() != b.rgb.size() || a.rgb.empty()) return -1;
  double s = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) s += std::abs(int(a.rgb[i]) - int(b.rgb[i]));
  return s / a.rgb.size();
}

class FluxGenerate : public CliTest {};

}  // namespace

TEST_F(FluxGenerate, TinyFluxMakesAPinnedPicture) {
  const std::string base = "generate --model tiny-flux --width 64 --height 48 --steps 3 --prompt 'a red fox' ";
  ASSERT_EQ(run(base + "--out " + path("a.png")), 0) << err_;
  EXPECT_NE(err_.find("Flux.1 dev"), std::string::npos) << err_;
  EXPECT_NE(err_.find("step 3/3"), std::string::npos) << err_;
  const Picture a = read_png(path("a.png"));
  ASSERT_EQ(a.width, 64u);
  ASSERT_EQ(a.height, 48u);
  // Not flat: the tiny VAE draws structure from the latent.
  double mean = 0, var = 0;
  for (uint8_t v : a.rgb) mean += v;
  mean /= a.rgb.size();
  for (uint8_t v : a.rgb) var += (v - mean) * (v - mean);
  EXPECT_GT(std::sqrt(var / a.rgb.size()), 5.0);
  // Pinned: the CPU reference's picture for this command (any change to the Flux pipeline,
  // the encoders' padding, the schedule, the VAE or the byte mapping moves it).
  std::printf("[ info ] tiny-flux picture FNV-1a %016llx\n", static_cast<unsigned long long>(fnv(a.rgb)));
  EXPECT_EQ(fnv(a.rgb), 0x52cf5bf9bbb102adull);

  ASSERT_EQ(run(base + "--out " + path("b.png")), 0) << err_;
  EXPECT_EQ(read_png(path("b.png")).rgb, a.rgb);
  ASSERT_EQ(run(base + "--seed 7 --out " + path("c.png")), 0) << err_;
  EXPECT_GT(mean_abs_diff(a, read_png(path("c.png"))), 1.0);
  ASSERT_EQ(run(base + "--guidance 1.0 --out " + path("d.png")), 0) << err_;
  EXPECT_GT(mean_abs_diff(a, read_png(path("d.png"))), 0.0);
  ASSERT_EQ(run(base + "--prompt 'a blue boat' --out " + path("e.png")), 0) << err_;
  EXPECT_GT(mean_abs_diff(a, read_png(path("e.png"))), 0.0);
}

TEST_F(FluxGenerate, WritesWebpAndDefaultsToAPicture) {
  ASSERT_EQ(run("generate --model tiny-flux --width 32 --height 32 --steps 1 --out " + path("p.webp")), 0) << err_;
  EXPECT_GT(fs::file_size(path("p.webp")), 20u);
  ASSERT_EQ(shell("cd " + path("") + " && " + binary() + " generate --model tiny-flux --width 32 --height 32 --steps 1"),
            0)
      << err_;
  EXPECT_EQ(read_png(path("picture.png")).width, 32u);
}

TEST_F(FluxGenerate, RefusesVideoOutputsAndMismatchedParts) {
  const std::string base = "generate --model tiny-flux --width 32 --height 32 --steps 1 ";
  EXPECT_NE(run(base + "--out " + path("v.mp4")), 0);
  EXPECT_NE(err_.find("'.mp4'"), std::string::npos) << err_;
  EXPECT_NE(run(base + "--out " + path("frames/")), 0);
  // A T5 where the CLIP goes: both make 'context'.
  EXPECT_NE(run(base + "--text-encoder-2 tiny --out " + path("x.png")), 0);
  EXPECT_NE(err_.find("makes 'context' again"), std::string::npos) << err_;
  EXPECT_NE(err_.find("CLIP-L text encoder"), std::string::npos) << err_;
  // The Wan tiny T5 is 64 wide too, but the Wan VAE is a video VAE of another family.
  EXPECT_NE(run(base + "--text-encoder tiny-flux-clip --out " + path("x.png")), 0);
  EXPECT_NE(run(base + "--vae tiny --out " + path("x.png")), 0);
  EXPECT_NE(err_.find("decodes videos but the DiT tiny-flux makes pictures"), std::string::npos) << err_;
  EXPECT_FALSE(fs::exists(path("x.png")));
  for (const auto& e : fs::directory_iterator(path(""))) EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos);
}

TEST_F(FluxGenerate, TinyFluxPartsAreEmbedded) {
  EXPECT_EQ(embedded_parts("tiny-flux", PartKind::TextEncoder), (std::vector<std::string>{"tiny-flux", "tiny-flux-clip"}));
  EXPECT_EQ(embedded_parts("tiny", PartKind::TextEncoder), (std::vector<std::string>{"tiny"}));
  const auto spec = denoiser_spec(*open_store("tiny-flux", PartKind::Denoiser), "tiny-flux");
  EXPECT_EQ(spec->embedded_name(), "tiny-flux");
  EXPECT_EQ(spec->latent_format().item_rank, 3);
  for (const auto& in : spec->conditioning_inputs())
    if (in.name == "context") EXPECT_EQ(in.pad_tokens, 512);
}
