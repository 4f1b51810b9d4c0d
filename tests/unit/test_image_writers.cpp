// write_image (src/io/image): pictures read back with the libraries themselves - libpng's
// simplified reader for PNG (lossless: every value within half a level of the clamped
// input), libwebp's decoder for WebP (lossy q90, 4:2:0: mean error bounded as for the
// animated WebP videos in test_video_writers.cpp), the JPEG markers where this build has
// JPEG - and the refusals: shapes, NaN, extensions, non-regular outputs, nothing left
// half written.
#include <gtest/gtest.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>
#if __has_include(<webp/decode.h>)
#include <webp/decode.h>
#define HAVE_WEBP_DECODER 1
#endif

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/image/image_codecs.h"
#include "io/image/image_writer.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() / ("raylight-image-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
  }
};

// [3, H, W]: a gradient in red and green, blue bars, and a corner outside [-1, 1].
Tensor pattern(int64_t H, int64_t W) {
  Tensor t = Tensor::empty({3, H, W});
  float* p = t.f32();
  for (int64_t y = 0; y < H; ++y)
    for (int64_t x = 0; x < W; ++x) {
      p[(0 * H + y) * W + x] = -1.0f + 2.0f * x / (W - 1);
      p[(1 * H + y) * W + x] = -1.0f + 2.0f * y / (H - 1);
      p[(2 * H + y) * W + x] = (x / 8) % 2 ? 0.8f : -0.6f;
    }
  p[0] = 3.0f;  // clamped to 1
  p[1] = -7.0f;  // clamped to -1
  return t;
}

float clamped(float v) { return std::min(1.0f, std::max(-1.0f, v)); }

template <typename F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST(ImageWriter, PngRoundTripIsExactToHalfALevel) {
  TempDir d;
  const std::string path = d.path("picture.png");
  const Tensor t = pattern(24, 40);
  write_image(path, t);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  ASSERT_TRUE(png_image_begin_read_from_file(&image, path.c_str())) << image.message;
  EXPECT_EQ(image.width, 40u);
  EXPECT_EQ(image.height, 24u);
  image.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> rgb(PNG_IMAGE_SIZE(image));
  ASSERT_TRUE(png_image_finish_read(&image, nullptr, rgb.data(), 0, nullptr)) << image.message;
  double worst = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 24 * 40; ++i)
      worst = std::max(worst, std::fabs(rgb[i * 3 + c] / 127.5 - 1.0 - clamped(t.f32()[c * 24 * 40 + i])));
  EXPECT_LE(worst, 1.0 / 255 + 1e-6);
  EXPECT_EQ(d.entries(), std::vector<std::string>{"picture.png"});
}

TEST(ImageWriter, WebpRoundTripWithinLossyBounds) {
  TempDir d;
  const std::string path = d.path("picture.webp");
  const Tensor t = pattern(32, 48);
  if (!image::have_webp()) {  // builds with -DRAYLIGHT_VIDEO_IO=OFF refuse .webp by name
    EXPECT_TRUE(contains(error_of([&] { write_image(path, t); }), "WebP is not in this build"));
    return;
  }
  write_image(path, t);
#ifdef HAVE_WEBP_DECODER
  const std::vector<uint8_t> bytes = file_bytes(path);
  int w = 0, h = 0;
  uint8_t* rgb = WebPDecodeRGB(bytes.data(), bytes.size(), &w, &h);
  ASSERT_NE(rgb, nullptr);
  ASSERT_EQ(w, 48);
  ASSERT_EQ(h, 32);
  double sum = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 32 * 48; ++i) sum += std::fabs(rgb[i * 3 + c] / 127.5 - 1.0 - clamped(t.f32()[c * 32 * 48 + i]));
  WebPFree(rgb);
  EXPECT_LT(sum / (3 * 32 * 48), 0.05);
#endif
  EXPECT_EQ(d.entries(), std::vector<std::string>{"picture.webp"});
}

TEST(ImageWriter, JpegWhereBuiltElseRefusedByName) {
  TempDir d;
  const std::string path = d.path("picture.JPG");
  if (!image::have_jpeg()) {
    EXPECT_TRUE(contains(error_of([&] { write_image(path, pattern(16, 16)); }), "-DRAYLIGHT_JPEG=ON"));
    EXPECT_TRUE(d.entries().empty());
    return;
  }
  write_image(path, pattern(16, 16));
  const std::vector<uint8_t> b = file_bytes(path);
  ASSERT_GT(b.size(), 100u);
  EXPECT_EQ(b[0], 0xFF);
  EXPECT_EQ(b[1], 0xD8);
  EXPECT_EQ(b[b.size() - 2], 0xFF);
  EXPECT_EQ(b[b.size() - 1], 0xD9);
}

TEST(ImageWriter, AOneFrameVideoTensorIsAPicture) {
  TempDir d;
  write_image(d.path("a.png"), pattern(16, 16).reshape({3, 1, 16, 16}));
  EXPECT_TRUE(fs::is_regular_file(d.path("a.png")));
}

TEST(ImageWriter, RefusesBadPicturesAndLeavesNothing) {
  TempDir d;
  const std::string path = d.path("bad.png");
  EXPECT_TRUE(contains(error_of([&] { write_image(path, Tensor::zeros({4, 8, 8})); }), path));
  EXPECT_TRUE(contains(error_of([&] { write_image(path, Tensor::zeros({3, 2, 8, 8})); }), "[3, height, width]"));
  EXPECT_FALSE(error_of([&] { write_image(path, Tensor::zeros({3, 0, 8})); }).empty());
  Tensor nan = pattern(8, 8);
  nan.f32()[5] = NAN;
  EXPECT_FALSE(error_of([&] { write_image(path, nan); }).empty());
  EXPECT_TRUE(contains(error_of([&] { write_image(d.path("x.gif"), pattern(8, 8)); }), "'.gif'"));
  EXPECT_TRUE(contains(error_of([&] { write_image(d.path("noext"), pattern(8, 8)); }), "no file extension"));
  EXPECT_TRUE(d.entries().empty());
}

TEST(ImageWriter, RefusesNonRegularOutputsAndReplacesFilesWhole) {
  TempDir d;
  fs::create_directories(d.path("folder.png"));
  std::string msg = error_of([&] { write_image(d.path("folder.png"), pattern(8, 8)); });
  EXPECT_TRUE(contains(msg, "folder")) << msg;
  EXPECT_TRUE(fs::is_directory(d.path("folder.png")));
  ASSERT_EQ(::mkfifo(d.path("fifo.png").c_str(), 0600), 0);
  EXPECT_TRUE(is_image_path(d.path("fifo.png")));
  {
    std::ofstream(d.path("old.png")) << "old";
  }
  write_image(d.path("old.png"), pattern(8, 8));
  EXPECT_NE(file_bytes(d.path("old.png")).size(), 3u);
  for (const auto& e : d.entries()) EXPECT_FALSE(contains(e, ".tmp-")) << e;
}
