// The tiled VAE decode (models/common/latent_tiles.h, pipeline/tiled_decode.h): where tiles
// go, the blend, the Wan VAE's exact regions (tiled == untiled within the stated bound),
// the tile size from a memory limit, and the decode spread over 1-4 CPU ranks equal to the
// single-process tiled decode bit for bit.
//
// Bound: a Wan tile decoded with the VAE's exact context (15 latent pixels for the released
// architecture) reads everything the untiled decode reads for its core pixels, and without
// overlap each pixel comes from one tile, copied. On the CPU backend (fp32, the same
// arithmetic per pixel whatever the image size) the difference is 0; the tests allow 1e-6
// (values in [-1, 1]). With too little context the difference is visible (the test below
// shows 1e-3 or more), so the bound is not met by accident.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/common/latent_tiles.h"
#include "models/registry.h"
#include "models/vae/wan_vae_memory.h"
#include "pipeline/tiled_decode.h"
#include "sampling/noise.h"

using namespace raylight;

namespace {

float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

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

// Every latent pixel lies in some core, and neighbouring cores share at least `overlap`.
void expect_covers(const TilePlan& p) {
  std::vector<int> covered(static_cast<size_t>(p.height * p.width), 0);
  for (const auto& t : p.tiles) {
    EXPECT_LE(t.decoded.y0, t.core.y0);
    EXPECT_GE(t.decoded.y1, t.core.y1);
    EXPECT_GE(t.decoded.y0, 0);
    EXPECT_LE(t.decoded.x1, p.width);
    for (int64_t y = t.core.y0; y < t.core.y1; ++y)
      for (int64_t x = t.core.x0; x < t.core.x1; ++x) ++covered[static_cast<size_t>(y * p.width + x)];
  }
  for (int c : covered) ASSERT_GE(c, 1);
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c + 1 < p.columns; ++c)
      EXPECT_GE(p.tiles[r * p.columns + c].core.x1 - p.tiles[r * p.columns + c + 1].core.x0, p.overlap);
  for (int64_t r = 0; r + 1 < p.rows; ++r)
    EXPECT_GE(p.tiles[r * p.columns].core.y1 - p.tiles[(r + 1) * p.columns].core.y0, p.overlap);
}

// A codec whose region decode paints each pixel with a value known in advance, so the
// blend itself is what is tested: a smooth function of position (blending equal values
// must keep them), or the tile's index (the ramp is visible).
class PaintCodec final : public LatentCodec {
 public:
  explicit PaintCodec(bool by_index) : by_index_(by_index) {}
  std::string variant() const override { return "paint"; }
  int64_t latent_channels() const override { return 1; }
  Tensor decode(const Tensor&, const Progress&) override { return {}; }
  Tensor encode(const Tensor&, const Progress&) override { return {}; }
  LatentTiling tiling() const override { return {2, 0}; }
  double region_decode_bytes(int64_t h, int64_t w, int64_t) const override { return 1000.0 * h * w; }

  struct Regions final : RegionDecoder {
    const PaintCodec& c;
    explicit Regions(const PaintCodec& codec) : c(codec) {}
    Tensor decode(const LatentRegion& r) override {
      Tensor t = Tensor::empty({3, r.height() * 2, r.width() * 2});
      for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t y = 0; y < r.height() * 2; ++y)
          for (int64_t x = 0; x < r.width() * 2; ++x)
            t.f32()[(ch * r.height() * 2 + y) * r.width() * 2 + x] =
                c.by_index_ ? static_cast<float>(c.calls_) : 0.01f * (r.y0 * 2 + y) - 0.02f * (r.x0 * 2 + x) + ch;
      ++const_cast<PaintCodec&>(c).calls_;
      return t;
    }
  };
  std::unique_ptr<RegionDecoder> region_decoder(const Tensor&) override { return std::make_unique<Regions>(*this); }

 private:
  bool by_index_;
  int calls_ = 0;
};

// The released VAE's memory model without its weights (choose_tile needs only that).
class RealSizeWanCodec final : public LatentCodec {
 public:
  std::string variant() const override { return "Wan 2.1 VAE (shapes only)"; }
  int64_t latent_channels() const override { return 16; }
  Tensor decode(const Tensor&, const Progress&) override { return {}; }
  Tensor encode(const Tensor&, const Progress&) override { return {}; }
  LatentTiling tiling() const override { return {8, 15}; }
  double region_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return wan_vae_region_decode_bytes(WanVaeConfig{}, h, w);
  }
  double shared_decode_bytes(int64_t h, int64_t w, int64_t) const override {
    return wan_vae_shared_decode_bytes(WanVaeConfig{}, h, w);
  }
  double weight_bytes() const override { return wan_vae_weight_bytes(WanVaeConfig{}); }
};

class VaeTiles : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::unique_ptr<LatentCodec> tiny = make_latent_codec(open_store("tiny", PartKind::LatentCodec), *cpu, "tiny");
  std::string dir = (std::filesystem::temp_directory_path() / ("raylight_vae_tiles_" + std::to_string(getpid()))).string();
  void SetUp() override { std::filesystem::create_directories(dir); }
  void TearDown() override { std::filesystem::remove_all(dir); }
};

constexpr double kGiB = 1024.0 * 1024 * 1024;

}  // namespace

TEST(TilePlans, CoverTheLatentWithUnevenCounts) {
  const LatentTiling exact{8, 15}, blended{8, 0};
  for (const auto& [h, w, th, tw] : std::vector<std::array<int64_t, 4>>{
           {60, 104, 32, 48}, {90, 160, 40, 40}, {13, 17, 5, 7}, {7, 9, 6, 8}, {100, 3, 33, 1}}) {
    const TilePlan a = plan_tiles(exact, h, w, th, tw);
    expect_covers(a);
    EXPECT_EQ(a.overlap, 0);
    EXPECT_EQ(a.context, 15);
    for (const auto& t : a.tiles) {
      EXPECT_LE(t.core.height(), th);
      EXPECT_LE(t.core.width(), tw);
    }
    const TilePlan b = plan_tiles(blended, h, w, th, tw);
    expect_covers(b);
    EXPECT_EQ(b.overlap, std::min(th, tw) / 4);
    EXPECT_EQ(b.context, 0);
  }
  // 60 rows in tiles of 32 with no overlap: 2; 104 columns in 48: 3 (uneven: 104 = 3 x 34.7).
  const TilePlan p = plan_tiles(exact, 60, 104, 32, 48);
  EXPECT_EQ(p.rows, 2);
  EXPECT_EQ(p.columns, 3);
  EXPECT_EQ(p.tiles.size(), 6u);
}

TEST(TilePlans, TilesLargerThanTheLatentAreOneTile) {
  for (const auto& [th, tw] : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {20, 30}, {500, 500}, {12, 0}}) {
    const TilePlan p = plan_tiles({8, 15}, 12, 20, th, tw);
    ASSERT_EQ(p.tiles.size(), 1u);
    EXPECT_EQ(p.tiles[0].core.height(), 12);
    EXPECT_EQ(p.tiles[0].decoded.width(), 20);
  }
}

TEST(TilePlans, BadValuesAreRefusedByName) {
  EXPECT_TRUE(contains(error_of([] { plan_tiles({}, 10, 10, 4, 4); }), "cannot decode by tiles"));
  EXPECT_TRUE(contains(error_of([] { plan_tiles({8, 0}, 10, 10, 4, 4, 4); }), "overlap 4 must be smaller"));
  EXPECT_TRUE(contains(error_of([] { plan_tiles({8, 0}, 10, 10, -1, 4); }), "outside 0.."));
  EXPECT_TRUE(contains(error_of([] { plan_tiles({8, 0}, 0, 10, 4, 4); }), "latent of 0x10"));
  EXPECT_TRUE(contains(error_of([] { parse_vae_tile("256"); }), "takes HxW"));
  EXPECT_TRUE(contains(error_of([] { parse_vae_tile("0x256"); }), "1..65536"));
  EXPECT_TRUE(contains(error_of([] { parse_vae_tile("-8x256"); }), "takes HxW"));
  EXPECT_TRUE(contains(error_of([] { parse_vae_tile("256x1e3"); }), "takes HxW"));
  EXPECT_TRUE(contains(error_of([] { parse_vae_tile("99999999999999999999x8"); }), "takes HxW"));
  const VaeTileRequest r = parse_vae_tile("256x320");
  EXPECT_EQ(r.tile_h, 256);
  EXPECT_EQ(r.tile_w, 320);
  RealSizeWanCodec codec;
  EXPECT_TRUE(contains(error_of([&] { vae_tile_plan(codec, {16, 3, 30, 40}, parse_vae_tile("100x64")); }),
                       "multiples of 8"));
}

TEST(TileBlend, KeepsEqualValuesAndRampsAcrossOverlaps) {
  // Tiles painting the same smooth picture blend into that picture (the weights sum to 1).
  PaintCodec smooth(false);
  const TilePlan p = plan_tiles(smooth.tiling(), 10, 14, 6, 8, 3);
  ASSERT_GT(p.tiles.size(), 3u);
  Tensor whole = decode_tiles(smooth, Tensor::zeros({1, 10, 14}), p);
  ASSERT_EQ(whole.shape(), (Shape{3, 20, 28}));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < 20; ++y)
      for (int64_t x = 0; x < 28; ++x)
        EXPECT_NEAR(whole.f32()[(c * 20 + y) * 28 + x], 0.01f * y - 0.02f * x + c, 1e-5f);
  // Two tiles side by side painting 0 and 1: across their overlap the value rises linearly.
  PaintCodec index(true);
  const TilePlan two = plan_tiles(index.tiling(), 2, 10, 0, 6, 2);
  ASSERT_EQ(two.tiles.size(), 2u);
  ASSERT_EQ(two.tiles[1].core.x0, 4);  // overlap [4, 6) latent = pixels [8, 12)
  Tensor v = decode_tiles(index, Tensor::zeros({1, 2, 10}), two);
  const float* row = v.f32();  // channel 0, pixel row 0
  for (int x = 0; x < 8; ++x) EXPECT_EQ(row[x], 0.0f);
  for (int x = 8; x < 12; ++x) EXPECT_NEAR(row[x], (x - 8 + 0.5f) / 4, 1e-6f) << x;
  for (int x = 12; x < 20; ++x) EXPECT_EQ(row[x], 1.0f);
}

TEST_F(VaeTiles, WanTiledEqualsUntiledWithinTheBound) {
  const Tensor latent = gaussian_noise({16, 2, 20, 24}, 0x711e);  // 160x192 pixels, 5 frames
  const Tensor whole = tiny->decode(latent);
  EXPECT_EQ(tiny->tiling().exact_context, 15);
  // Uneven grids, one tile larger than the image, and tiles with a blended overlap.
  for (const auto& [th, tw, overlap] : std::vector<std::array<int64_t, 3>>{
           {8, 8, 0}, {12, 10, 0}, {7, 24, 0}, {40, 40, 0}, {10, 12, 2}}) {
    const TilePlan p = plan_tiles(tiny->tiling(), 20, 24, th, tw, overlap);
    const Tensor tiled = decode_tiles(*tiny, latent, p);
    EXPECT_LE(max_abs_diff(tiled, whole), 1e-6f) << describe(p);
  }
  // Too little context: the seams show (so the bound above is not met by accident).
  const TilePlan thin = plan_tiles({8, 2}, 20, 24, 10, 12);
  EXPECT_GT(max_abs_diff(decode_tiles(*tiny, latent, thin), whole), 1e-3f);
}

TEST_F(VaeTiles, TileSizeFromTheMemoryLimit) {
  RealSizeWanCodec codec;
  // 720x1280x81: 90x160 latent pixels, 21 latent frames.
  const double untiled = codec.region_decode_bytes(90, 160, 21) + codec.shared_decode_bytes(90, 160, 21);
  // Measured on an H200 (docs/benchmarks.md): 6.81 GiB live at the peak; the model is on
  // the high side of that (9.8 GiB), so a 12 GiB cap decodes 720p whole and 8 GiB tiles.
  EXPECT_GT(untiled, 6.81 * kGiB);
  EXPECT_LT(untiled, 12 * kGiB);
  EXPECT_FALSE(vae_tile_plan(codec, {16, 21, 90, 160}, {0, 0, 12 * kGiB, 0}).has_value());
  EXPECT_FALSE(vae_tile_plan(codec, {16, 21, 90, 160}, {0, 0, 80 * kGiB, 0}).has_value());
  for (double cap : {4.0, 6.0, 8.0}) {
    const auto plan = vae_tile_plan(codec, {16, 21, 90, 160}, {0, 0, cap * kGiB, 0});
    ASSERT_TRUE(plan.has_value()) << cap;
    EXPECT_GT(plan->tiles.size(), 1u);
    double most = 0;
    for (const auto& t : plan->tiles)
      most = std::max(most, codec.region_decode_bytes(t.decoded.height(), t.decoded.width(), 21));
    EXPECT_LE(most + codec.weight_bytes(), cap * kGiB) << describe(*plan);
  }
  EXPECT_TRUE(contains(error_of([&] { vae_tile_plan(codec, {16, 21, 90, 160}, {0, 0, 1.0 * kGiB, 0}); }),
                       "does not fit"));
  // More ranks than the memory's tiles: at least one tile per rank.
  for (int ranks : {2, 3, 4}) {
    VaeTileRequest r;
    r.ranks = ranks;
    const auto plan = vae_tile_plan(codec, {16, 21, 60, 104}, r);
    ASSERT_TRUE(plan.has_value());
    EXPECT_EQ(plan->tiles.size(), static_cast<size_t>(ranks));
  }
  // A latent within the context of its tiles gains nothing from more ranks: it decodes whole.
  VaeTileRequest two;
  two.ranks = 2;
  EXPECT_FALSE(vae_tile_plan(codec, {16, 3, 16, 16}, two).has_value());
  // A codec that cannot tile decodes whole whatever the limit; --vae-tile is refused.
  struct Whole final : LatentCodec {
    std::string variant() const override { return "whole"; }
    int64_t latent_channels() const override { return 16; }
    Tensor decode(const Tensor&, const Progress&) override { return {}; }
    Tensor encode(const Tensor&, const Progress&) override { return {}; }
  } whole;
  EXPECT_FALSE(vae_tile_plan(whole, {16, 21, 90, 160}, {0, 0, 1.0 * kGiB, 0}).has_value());
  EXPECT_TRUE(contains(error_of([&] { vae_tile_plan(whole, {16, 21, 90, 160}, parse_vae_tile("64x64")); }),
                       "cannot decode by tiles"));
}

TEST_F(VaeTiles, RanksMatchTheSingleProcessTiledDecodeExactly) {
  // 12x20 latent pixels, 2 latent frames: tiles of 4x8 -> 3 x 3 = 9 tiles (uneven over 2,
  // 3 and 4 ranks), 5x20 -> 3 x 1 (fewer than 4 ranks), 40x40 -> 1 tile.
  for (const auto& [th, tw] : std::vector<std::pair<int, int>>{{4, 8}, {5, 20}, {40, 40}}) {
    const TilePlan p = plan_tiles(tiny->tiling(), 12, 20, th, tw);
    const Tensor want = decode_tiles(*tiny, gaussian_noise({16, 2, 12, 20}, 0x7115), p);
    for (int ranks = 1; ranks <= 4; ++ranks) {
      const std::string out = dir + "/r" + std::to_string(ranks) + ".safetensors", log = dir + "/log.txt";
      const std::string cmd = std::string(RAYLIGHT_VAE_TILES_CHECK) + " --ranks " + std::to_string(ranks) +
                              " --height 12 --width 20 --frames 2 --tile " + std::to_string(th) + " " +
                              std::to_string(tw) + " --out " + out + " > " + log + " 2>&1";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
      const Tensor got = SafetensorsFile::open(out)->tensor("video").to_f32();
      EXPECT_EQ(max_abs_diff(got, want), 0.0f) << ranks << " ranks, tiles " << th << "x" << tw;
    }
  }
}
