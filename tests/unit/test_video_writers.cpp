// Tests for write_video (MP4 / animated WebP / PNG) and the probe/read helpers.
//
// Every test writes into its own temporary directory and reads the result back through
// probe_video / read_video_frames, so frame count, size and timing are checked exactly on
// the real files. Content is a synthetic pattern whose every frame differs (so WebP
// cannot merge frames) and that holds the hard cases for a codec: saturated colour bars
// (sharp chroma edges), smooth gradients, and values outside [-1, 1] (clamping).
//
// Tolerances (tensor units, where one 8-bit level is 2/255 ~ 0.0078):
//   PNG:  lossless, so every value is within 1/255 (half a level: the rounding) of the
//         clamped input.
//   WebP (lossy q90) and H.264 (CRF 18): flat colours come back within one level, but
//         both store chroma at half resolution (4:2:0), so saturated colour-bar edges
//         smear over a few pixels. The two halves of the pattern therefore get separate
//         mean-absolute-error bounds, measured at 96x64 with libwebp 1.2.4 and x264 164:
//           gradient half: WebP 0.012, H.264 0.018  -> bound 0.03  (~4 levels)
//           colour bars:   WebP 0.047, H.264 0.048  -> bound 0.07  (~9 levels)
//         The bounds leave ~1.5x headroom for other codec versions (swapped R/B channels
//         measure ~0.59). Each decoded frame must also be closer to its own source frame
//         than to any other: a one-frame shift costs ~0.1 on the gradient half, whose
//         blue channel ramps with the frame.
// Value mapping and clamping are checked exactly through PNG.
// Failure tests list the directory afterwards: no "<path>.tmp-<pid>" may survive.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/video/video_probe.h"
#include "io/video/video_writer.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

constexpr double kPngTolerance = 1.0 / 255 + 1e-6;
constexpr double kLossyGradientMae = 0.03;
constexpr double kLossyBarsMae = 0.07;

struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() /
          ("raylight-video-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(std::random_device{}()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  // Sorted names of the entries directly in `sub` (default: the temp dir itself).
  std::vector<std::string> list(const std::string& sub = "") const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(sub.empty() ? dir : dir / sub))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

using Names = std::vector<std::string>;

// [3, F, H, W]: colour bars on top, gradients below (red overshoots to +-1.2 to exercise
// clamping), blue of the gradient half ramps with the frame so every frame differs.
// Without bars the gradients fill the frame (odd-size tests: at 33x17 a frame would be
// mostly bar edges, which measures chroma subsampling rather than the size handling).
Tensor pattern(int64_t F, int64_t H, int64_t W, bool bars_on_top = true) {
  static const float bars[8][3] = {{1, 1, 1},  {1, 1, -1},  {-1, 1, 1},  {-1, 1, -1},
                                   {1, -1, 1}, {1, -1, -1}, {-1, -1, 1}, {-1, -1, -1}};
  Tensor t = Tensor::empty({3, F, H, W});
  float* p = t.f32();
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t f = 0; f < F; ++f)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          float v;
          if (bars_on_top && y < H / 2) {
            v = bars[x * 8 / W][c];
          } else if (c == 0) {
            v = W > 1 ? 2.4f * x / (W - 1) - 1.2f : 0.0f;
          } else if (c == 1) {
            const int64_t y0 = bars_on_top ? H / 2 : 0;
            v = 2.0f * (y - y0) / std::max<int64_t>(1, H - y0 - 1) - 1.0f;
          } else {
            v = F > 1 ? 2.0f * f / (F - 1) - 1.0f : 0.0f;
          }
          p[((c * F + f) * H + y) * W + x] = v;
        }
  return t;
}

// Mean and max |clamp(a) - b| over rows [y0, y1) of a's [3, F, H, W] extent (all rows
// when y1 < 0), comparing frame fa of a with frame fb of b (every frame when fa < 0);
// b may be larger than a (MP4 padding).
struct Diff {
  double mae = 0, max = 0;
};
Diff compare(const Tensor& a, const Tensor& b, int64_t y0 = 0, int64_t y1 = -1, int64_t fa = -1,
             int64_t fb = -1) {
  const int64_t F = a.dim(1), H = a.dim(2), W = a.dim(3);
  const int64_t bF = b.dim(1), bH = b.dim(2), bW = b.dim(3);
  if (y1 < 0) y1 = H;
  Diff d;
  int64_t n = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t f = 0; f < F; ++f) {
      if (fa >= 0 && f != fa) continue;
      const int64_t g = fa >= 0 ? fb : f;
      for (int64_t y = y0; y < y1; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const float va = std::clamp(a.f32()[((c * F + f) * H + y) * W + x], -1.0f, 1.0f);
          const float vb = b.f32()[((c * bF + g) * bH + y) * bW + x];
          const double e = std::fabs(double(va) - vb);
          d.mae += e;
          d.max = std::max(d.max, e);
          ++n;
        }
    }
  d.mae /= double(n);
  return d;
}

// The lossy-codec content check for pattern() with bars (see the top of the file).
void expect_lossy_match(const Tensor& src, const Tensor& back, const std::string& tag) {
  const int64_t F = src.dim(1), H = src.dim(2);
  ASSERT_EQ(back.dim(1), F);
  const double bars = compare(src, back, 0, H / 2).mae;
  const double grad = compare(src, back, H / 2, H).mae;
  ::testing::Test::RecordProperty(tag + "_bars_mae", std::to_string(bars));
  ::testing::Test::RecordProperty(tag + "_gradient_mae", std::to_string(grad));
  EXPECT_LE(bars, kLossyBarsMae) << tag;
  EXPECT_LE(grad, kLossyGradientMae) << tag;
  for (int64_t f = 0; f < F; ++f) {
    const double own = compare(src, back, H / 2, H, f, f).mae;
    for (int64_t g = 0; g < F; ++g)
      if (g != f) EXPECT_LT(own, compare(src, back, H / 2, H, g, f).mae) << tag << " frame " << f;
  }
}

void expect_size(const VideoInfo& info, int64_t frames, int64_t width, int64_t height) {
  EXPECT_EQ(info.frames, frames);
  EXPECT_EQ(info.width, width);
  EXPECT_EQ(info.height, height);
}

// Runs `fn`, expecting an Error whose message contains every one of `parts`.
template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "expected raylight::Error";
  } catch (const Error& e) {
    for (const auto& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message: " << e.what() << "\nmissing: " << part;
  }
}

// ---------------------------------------------------------------------------------------
// Value mapping

TEST(VideoMapping, ClampsAndRoundsToBytes) {
  TempDir tmp;
  // -1 -> 0, 1 -> 255, 0 -> 127.5 rounds up to 128, +-5 clamp, 2/255 - 1 is level 1 exactly.
  const std::vector<float> values = {-1.0f, 1.0f, 0.0f, 5.0f, -5.0f, 2.0f / 255 - 1};
  Tensor v = Tensor::from_vector({3, 1, 1, 2}, values);
  write_video(tmp.file("m.png"), v);
  Tensor back = read_video_frames(tmp.file("m.png"));
  const std::vector<float> want = {-1.0f, 1.0f, 128 / 127.5f - 1, 1.0f, -1.0f, 1 / 127.5f - 1};
  ASSERT_EQ(back.shape(), (Shape{3, 1, 1, 2}));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(back.f32()[i], want[i], 1e-6) << i;
}

// ---------------------------------------------------------------------------------------
// PNG

TEST(VideoPng, SingleFrameIsOneFileReadBackExactly) {
  TempDir tmp;
  Tensor v = pattern(1, 20, 30);
  write_video(tmp.file("still.png"), v);
  EXPECT_EQ(tmp.list(), Names{"still.png"});
  expect_size(probe_video(tmp.file("still.png")), 1, 30, 20);
  EXPECT_LE(compare(v, read_video_frames(tmp.file("still.png"))).max, kPngTolerance);
}

TEST(VideoPng, SeveralFramesBecomeANumberedSequence) {
  TempDir tmp;
  Tensor v = pattern(3, 16, 24);
  write_video(tmp.file("out.png"), v);
  EXPECT_EQ(tmp.list(), (Names{"out_00000.png", "out_00001.png", "out_00002.png"}));
  const VideoInfo info = probe_video(tmp.file("out.png"));
  expect_size(info, 3, 24, 16);
  EXPECT_TRUE(info.timestamps_s.empty());
  EXPECT_LE(compare(v, read_video_frames(tmp.file("out.png"))).max, kPngTolerance);
}

TEST(VideoPng, OddSizeIsKeptExactly) {
  TempDir tmp;
  Tensor v = pattern(2, 17, 33);
  write_video(tmp.file("odd.png"), v);
  expect_size(probe_video(tmp.file("odd.png")), 2, 33, 17);
  EXPECT_LE(compare(v, read_video_frames(tmp.file("odd.png"))).max, kPngTolerance);
}

TEST(VideoPng, DirectoryPathIsCreatedWithFrameFiles) {
  TempDir tmp;
  Tensor v = pattern(2, 8, 8);
  const std::string dir = tmp.file("frames") + "/";
  write_video(dir, v);  // "frames" did not exist
  EXPECT_EQ(tmp.list(), Names{"frames"});
  EXPECT_EQ(tmp.list("frames"), (Names{"frame_00000.png", "frame_00001.png"}));
  expect_size(probe_video(dir), 2, 8, 8);
  // Into the existing directory, one frame: still frame_00000.png, the stale one goes.
  write_video(dir, pattern(1, 8, 8));
  EXPECT_EQ(tmp.list("frames"), Names{"frame_00000.png"});
  EXPECT_EQ(tmp.list(), Names{"frames"});
}

TEST(VideoPng, RewriteReplacesTheEarlierOutput) {
  TempDir tmp;
  const std::string path = tmp.file("out.png");
  write_video(path, pattern(4, 8, 8));
  write_video(path, pattern(2, 8, 8));  // shorter: out_00002/3 must go
  EXPECT_EQ(tmp.list(), (Names{"out_00000.png", "out_00001.png"}));
  EXPECT_EQ(probe_video(path).frames, 2);
  write_video(path, pattern(1, 8, 8));  // single frame: the sequence goes
  EXPECT_EQ(tmp.list(), Names{"out.png"});
  write_video(path, pattern(2, 8, 8));  // and back: the single file goes
  EXPECT_EQ(tmp.list(), (Names{"out_00000.png", "out_00001.png"}));
}

// ---------------------------------------------------------------------------------------
// WebP

TEST(VideoWebp, RoundTripsFramesTimingAndContent) {
  TempDir tmp;
  const std::string path = tmp.file("anim.webp");
  Tensor v = pattern(8, 64, 96);
  write_video(path, v, 16.0);
  EXPECT_EQ(tmp.list(), Names{"anim.webp"});
  const VideoInfo info = probe_video(path);
  expect_size(info, 8, 96, 64);
  EXPECT_EQ(info.loop_count, 0);  // forever
  ASSERT_EQ(info.timestamps_s.size(), 8u);
  // Frame i starts at round(i * 62.5) ms; the file lasts 500 ms.
  for (int i = 0; i < 8; ++i)
    EXPECT_NEAR(info.timestamps_s[i], std::llround(i * 62.5) / 1000.0, 1e-9);
  EXPECT_NEAR(info.duration_s, 0.5, 1e-9);
  expect_lossy_match(v, read_video_frames(path), "webp");
}

TEST(VideoWebp, OddSizeIsKeptExactly) {
  TempDir tmp;
  const std::string path = tmp.file("odd.webp");
  Tensor v = pattern(3, 17, 33, /*bars_on_top=*/false);
  write_video(path, v, 8.0);
  expect_size(probe_video(path), 3, 33, 17);
  EXPECT_NEAR(probe_video(path).duration_s, 0.375, 1e-9);
  const Diff d = compare(v, read_video_frames(path));
  RecordProperty("webp_odd_mae", std::to_string(d.mae));
  EXPECT_LE(d.mae, kLossyGradientMae);
}

TEST(VideoWebp, SingleFrameIsAStillImage) {
  TempDir tmp;
  const std::string path = tmp.file("one.webp");
  Tensor v = pattern(1, 64, 96);
  write_video(path, v);
  const VideoInfo info = probe_video(path);
  expect_size(info, 1, 96, 64);
  EXPECT_EQ(info.loop_count, -1);  // no animation chunk
  expect_lossy_match(v, read_video_frames(path), "webp_single");
}

// Documented libwebp quirks: WebPAnimEncoder folds a frame identical to the previous one
// into it (fewer, longer frames; same total duration), and a result of one frame is
// stored as a still image, which has no timing or loop count.
TEST(VideoWebp, IdenticalFramesAreMerged) {
  TempDir tmp;
  const std::string path = tmp.file("merge.webp");
  Tensor v = Tensor::empty({3, 3, 4, 4});  // grey, grey, white
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 3 * 16; ++i) v.f32()[c * 48 + i] = i < 32 ? 0.0f : 1.0f;
  write_video(path, v, 10.0);
  VideoInfo info = probe_video(path);
  EXPECT_EQ(info.frames, 2);
  EXPECT_EQ(info.timestamps_s, (std::vector<double>{0.0, 0.2}));
  EXPECT_NEAR(info.duration_s, 0.3, 1e-9);

  write_video(path, Tensor::zeros({3, 3, 4, 4}), 10.0);  // all identical: a still image
  info = probe_video(path);
  EXPECT_EQ(info.frames, 1);
  EXPECT_EQ(info.loop_count, -1);
  EXPECT_EQ(info.duration_s, 0.0);
}

// ---------------------------------------------------------------------------------------
// MP4 (H.264)

TEST(VideoMp4, RoundTripsFramesTimingAndContent) {
  TempDir tmp;
  const std::string path = tmp.file("clip.mp4");
  Tensor v = pattern(8, 64, 96);
  write_video(path, v, 16.0);
  EXPECT_EQ(tmp.list(), Names{"clip.mp4"});
  const VideoInfo info = probe_video(path);
  expect_size(info, 8, 96, 64);
  ASSERT_EQ(info.timestamps_s.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(info.timestamps_s[i], i / 16.0, 1e-6) << i;
  EXPECT_NEAR(info.duration_s, 0.5, 1e-6);
  expect_lossy_match(v, read_video_frames(path), "mp4");
}

TEST(VideoMp4, NonIntegerFrameRateHasExactTimestamps) {
  TempDir tmp;
  const std::string path = tmp.file("ntsc.mp4");
  write_video(path, pattern(5, 16, 16), 30000.0 / 1001.0);
  const VideoInfo info = probe_video(path);
  ASSERT_EQ(info.frames, 5);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(info.timestamps_s[i], i * 1001.0 / 30000.0, 1e-6) << i;
  EXPECT_NEAR(info.duration_s, 5 * 1001.0 / 30000.0, 1e-6);
}

// Odd sizes are padded to even by repeating the last column/row (4:2:0 needs even sizes).
TEST(VideoMp4, OddSizeIsPaddedToEven) {
  TempDir tmp;
  const std::string path = tmp.file("odd.mp4");
  Tensor v = pattern(3, 17, 33, /*bars_on_top=*/false);
  write_video(path, v);
  expect_size(probe_video(path), 3, 34, 18);
  Tensor back = read_video_frames(path);
  ASSERT_EQ(back.shape(), (Shape{3, 3, 18, 34}));
  const Diff d = compare(v, back);  // the original 33x17 region
  RecordProperty("mp4_odd_mae", std::to_string(d.mae));
  EXPECT_LE(d.mae, kLossyGradientMae);
  // The padding column repeats column 32: compare it with that column of the input.
  double pad_err = 0;
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 17; ++y) {
      const float want = std::clamp(v.f32()[((c * 3 + 0) * 17 + y) * 33 + 32], -1.0f, 1.0f);
      pad_err += std::fabs(back.f32()[((c * 3 + 0) * 18 + y) * 34 + 33] - want);
    }
  EXPECT_LE(pad_err / (3 * 17), 0.15);
}

// ---------------------------------------------------------------------------------------
// Errors: each is a raylight::Error naming the path, and nothing is left behind.

TEST(VideoErrors, MissingDirectoryLeavesNothing) {
  TempDir tmp;
  Tensor v = pattern(2, 8, 8);
  for (const std::string name : {"clip.mp4", "anim.webp", "out.png", "frames/"}) {
    const std::string path = tmp.file("no-such-dir/" + name);
    expect_error([&] { write_video(path, v); }, {"write_video", path});
  }
  expect_error([&] { write_video(tmp.file("no-such-dir/one.png"), pattern(1, 8, 8)); },
               {"one.png"});
  EXPECT_EQ(tmp.list(), Names{});
}

TEST(VideoErrors, UnsupportedExtensionListsTheSupportedOnes) {
  TempDir tmp;
  const std::string path = tmp.file("clip.avi");
  expect_error([&] { write_video(path, pattern(1, 8, 8)); },
               {path, "unsupported extension '.avi'", ".mp4", ".webp", ".png", "'/'"});
  expect_error([&] { write_video(tmp.file("clip"), pattern(1, 8, 8)); }, {"no file extension"});
  EXPECT_EQ(tmp.list(), Names{});
}

TEST(VideoErrors, InvalidTensorsAndFps) {
  TempDir tmp;
  const std::string path = tmp.file("bad.mp4");
  expect_error([&] { write_video(path, Tensor::zeros({4, 1, 8, 8})); }, {path, "3 (RGB) channels"});
  expect_error([&] { write_video(path, Tensor::zeros({3, 8, 8})); }, {path, "[3, F, H, W]"});
  expect_error([&] { write_video(path, Tensor::zeros({3, 0, 8, 8})); }, {path, "empty"});
  expect_error([&] { write_video(path, Tensor()); }, {path});
  expect_error([&] { write_video(path, pattern(1, 8, 8), 0.0); }, {path, "fps"});
  expect_error([&] { write_video(path, pattern(1, 8, 8), NAN); }, {path, "fps"});
  Tensor nan = pattern(2, 8, 8);
  nan.f32()[(0 * 2 + 1) * 64 + 2 * 8 + 5] = NAN;  // channel 0, frame 1, y 2, x 5
  expect_error([&] { write_video(path, nan); }, {path, "NaN at [channel 0, frame 1, y 2, x 5]"});
  const Tensor wide = Tensor::zeros({3, 1, 1, 16384});  // over WebP's 16383 limit
  expect_error([&] { write_video(tmp.file("wide.webp"), wide); }, {"wide.webp", "16383"});
  EXPECT_EQ(tmp.list(), Names{});
}

// The encoder finishes but the commit fails (the target is a non-empty directory): the
// temporary file or directory must be gone and nothing renamed into place. For a PNG
// sequence the targets are checked before any frame is renamed, so frame 0 is not
// committed either.
TEST(VideoErrors, FailedCommitRemovesTemporaries) {
  TempDir tmp;
  for (const std::string name : {"clip.mp4", "anim.webp", "one.png"}) {
    fs::create_directories(tmp.dir / name / "keep");
    const std::string path = tmp.file(name);
    // Refused before anything is encoded: a folder is never replaced by a file.
    expect_error([&] { write_video(path, pattern(1, 8, 8)); }, {"write_video", path, "is a folder"});
  }
  fs::create_directories(tmp.dir / "seq_00001.png" / "keep");  // blocks the 2nd frame
  expect_error([&] { write_video(tmp.file("seq.png"), pattern(2, 8, 8)); }, {"seq.png"});
  for (const auto& name : tmp.list()) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  EXPECT_EQ(tmp.list(), (Names{"anim.webp", "clip.mp4", "one.png", "seq_00001.png"}));
}

TEST(VideoErrors, ReadingMissingOrCorruptFilesNamesThePath) {
  TempDir tmp;
  expect_error([&] { probe_video(tmp.file("none.mp4")); }, {"none.mp4"});
  expect_error([&] { probe_video(tmp.file("none.png")); }, {"none.png", "none_00000.png"});
  std::ofstream(tmp.file("junk.webp")) << "not a webp";
  expect_error([&] { probe_video(tmp.file("junk.webp")); }, {"junk.webp"});
  std::ofstream(tmp.file("junk.mp4")) << "not an mp4";
  expect_error([&] { read_video_frames(tmp.file("junk.mp4")); }, {"junk.mp4"});
}

}  // namespace
