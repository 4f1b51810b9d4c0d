// Tile placement, the blend, and the tile size from a memory budget.
#include "models/common/latent_tiles.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace raylight {
namespace {

// [begin, end) spans of at most `tile` covering [0, length), neighbours sharing >= overlap,
// spread evenly (the last tile is not a sliver).
std::vector<std::pair<int64_t, int64_t>> spans(int64_t length, int64_t tile, int64_t overlap) {
  if (tile <= 0 || tile >= length) return {{0, length}};
  const int64_t step = tile - overlap;
  const int64_t n = std::max<int64_t>(2, (length - overlap + step - 1) / step);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = (i * (length - tile) + (n - 1) / 2) / (n - 1);
    out.push_back({begin, begin + tile});
  }
  return out;
}

constexpr int64_t kMaxLatentSide = 1 << 16;
constexpr int64_t kMaxTiles = 1024;  // choose_tile looks no further

}  // namespace

TilePlan plan_tiles(const LatentTiling& tiling, int64_t height, int64_t width, int64_t tile_h, int64_t tile_w,
                    int64_t overlap) {
  if (tiling.scale <= 0) fail("tiled decode: this VAE cannot decode by tiles");
  if (height < 1 || width < 1 || height > kMaxLatentSide || width > kMaxLatentSide)
    fail("tiled decode: latent of ", height, "x", width, " pixels is outside 1..", kMaxLatentSide);
  if (tile_h < 0 || tile_w < 0 || tile_h > kMaxLatentSide || tile_w > kMaxLatentSide)
    fail("tiled decode: tile ", tile_h, "x", tile_w, " latent pixels is outside 0..", kMaxLatentSide);
  const bool split_h = tile_h > 0 && tile_h < height, split_w = tile_w > 0 && tile_w < width;
  if (overlap < 0) {
    const int64_t smaller = std::min(split_h ? tile_h : height, split_w ? tile_w : width);
    overlap = tiling.exact_context > 0 ? 0 : smaller / 4;
  }
  if ((split_h && overlap >= tile_h) || (split_w && overlap >= tile_w))
    fail("tiled decode: overlap ", overlap, " must be smaller than the tile (", tile_h, "x", tile_w,
         " latent pixels)");
  TilePlan p;
  p.height = height;
  p.width = width;
  p.scale = tiling.scale;
  p.overlap = overlap;
  p.context = std::max<int64_t>(0, tiling.exact_context);
  const auto ys = spans(height, tile_h, overlap), xs = spans(width, tile_w, overlap);
  p.rows = static_cast<int64_t>(ys.size());
  p.columns = static_cast<int64_t>(xs.size());
  for (const auto& [y0, y1] : ys)
    for (const auto& [x0, x1] : xs) {
      LatentTile t;
      t.core = {y0, y1, x0, x1};
      t.decoded = {std::max<int64_t>(0, y0 - p.context), std::min(height, y1 + p.context),
                   std::max<int64_t>(0, x0 - p.context), std::min(width, x1 + p.context)};
      p.tiles.push_back(t);
    }
  return p;
}

std::string describe(const TilePlan& p) {
  const LatentRegion& c = p.tiles.front().core;
  std::ostringstream os;
  os << p.rows << " x " << p.columns << " tiles of up to " << c.height() << "x" << c.width() << " latent pixels ("
     << c.height() * p.scale << "x" << c.width() * p.scale << " pixels), overlap " << p.overlap << ", context "
     << p.context;
  return os.str();
}

Tensor crop_latent(const Tensor& latent, const LatentRegion& r) {
  if (latent.ndim() != 3 && latent.ndim() != 4) fail("tiled decode: latent of shape ", shape_str(latent.shape()));
  const int64_t H = latent.dim(latent.ndim() - 2), W = latent.dim(latent.ndim() - 1);
  if (r.y0 < 0 || r.x0 < 0 || r.y1 > H || r.x1 > W || r.height() < 1 || r.width() < 1)
    fail("tiled decode: region [", r.y0, ", ", r.y1, ") x [", r.x0, ", ", r.x1, ") outside the ", H, "x", W,
         " latent");
  const Tensor src = latent.to_f32();
  Shape shape = src.shape();
  shape[shape.size() - 2] = r.height();
  shape[shape.size() - 1] = r.width();
  Tensor out = Tensor::empty(shape);
  const int64_t planes = src.numel() / (H * W);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = r.y0; y < r.y1; ++y) {
      const float* s = src.f32() + (p * H + y) * W + r.x0;
      std::copy(s, s + r.width(), out.f32() + (p * r.height() + (y - r.y0)) * r.width());
    }
  return out;
}

std::vector<float> TileBlender::ramp(int64_t begin, int64_t end, int64_t prev_end, int64_t next_begin) const {
  const int64_t s = plan_.scale, n = (end - begin) * s;
  std::vector<float> w(static_cast<size_t>(n), 1.0f);
  const int64_t up = std::max<int64_t>(0, prev_end - begin) * s, down = std::max<int64_t>(0, end - next_begin) * s;
  for (int64_t i = 0; i < n; ++i) {
    double v = 1.0;
    if (i < up) v = std::min(v, (static_cast<double>(i) + 0.5) / static_cast<double>(up));
    if (n - i <= down) v = std::min(v, (static_cast<double>(n - i) - 0.5) / static_cast<double>(down));
    w[static_cast<size_t>(i)] = static_cast<float>(v);
  }
  return w;
}

void TileBlender::add(size_t i, const Tensor& pixels_in) {
  if (i >= plan_.tiles.size()) fail("tiled decode: internal error, tile ", i, " of ", plan_.tiles.size());
  if (added_.empty()) added_.assign(plan_.tiles.size(), false);
  if (added_[i]) fail("tiled decode: internal error, tile ", i, " added twice");
  const LatentTile& t = plan_.tiles[i];
  const int64_t s = plan_.scale, dh = t.decoded.height() * s, dw = t.decoded.width() * s;
  const Tensor pixels = pixels_in.to_f32();
  if (pixels.ndim() < 3 || pixels.dim(pixels.ndim() - 2) != dh || pixels.dim(pixels.ndim() - 1) != dw)
    fail("tiled decode: the VAE gave ", shape_str(pixels.shape()), " for a region of ", dh, "x", dw, " pixels");
  const int64_t H = plan_.height * s, W = plan_.width * s;
  Shape whole = pixels.shape();
  whole[whole.size() - 2] = H;
  whole[whole.size() - 1] = W;
  if (!sum_.defined()) {
    sum_ = Tensor::zeros(whole);
    weight_.assign(static_cast<size_t>(H * W), 0.0f);
  } else if (sum_.shape() != whole) {
    fail("tiled decode: tile ", i, " gave ", shape_str(pixels.shape()), ", unlike the tiles before it");
  }
  // The neighbours' spans along each axis: the tiles above/below and left/right of i.
  const int64_t row = static_cast<int64_t>(i) / plan_.columns, col = static_cast<int64_t>(i) % plan_.columns;
  const auto at = [&](int64_t r, int64_t c) -> const LatentRegion& { return plan_.tiles[r * plan_.columns + c].core; };
  const int64_t prev_y = row > 0 ? at(row - 1, col).y1 : t.core.y0;
  const int64_t next_y = row + 1 < plan_.rows ? at(row + 1, col).y0 : t.core.y1;
  const int64_t prev_x = col > 0 ? at(row, col - 1).x1 : t.core.x0;
  const int64_t next_x = col + 1 < plan_.columns ? at(row, col + 1).x0 : t.core.x1;
  const std::vector<float> wy = ramp(t.core.y0, t.core.y1, prev_y, next_y);
  const std::vector<float> wx = ramp(t.core.x0, t.core.x1, prev_x, next_x);
  const int64_t ch = t.core.height() * s, cw = t.core.width() * s;
  const int64_t oy = (t.core.y0 - t.decoded.y0) * s, ox = (t.core.x0 - t.decoded.x0) * s;
  const int64_t Y = t.core.y0 * s, X = t.core.x0 * s, planes = pixels.numel() / (dh * dw);
  for (int64_t y = 0; y < ch; ++y)
    for (int64_t x = 0; x < cw; ++x) weight_[static_cast<size_t>((Y + y) * W + X + x)] += wy[y] * wx[x];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t y = 0; y < ch; ++y) {
      const float* src = pixels.f32() + (p * dh + oy + y) * dw + ox;
      float* dst = sum_.f32() + (p * H + Y + y) * W + X;
      for (int64_t x = 0; x < cw; ++x) dst[x] += wy[y] * wx[x] * src[x];
    }
  added_[i] = true;
}

Tensor TileBlender::finish() {
  if (added_.empty() || std::find(added_.begin(), added_.end(), false) != added_.end())
    fail("tiled decode: internal error, a tile is missing");
  const int64_t plane = static_cast<int64_t>(weight_.size()), planes = sum_.numel() / plane;
  for (int64_t p = 0; p < planes; ++p) {
    float* d = sum_.f32() + p * plane;
    for (int64_t i = 0; i < plane; ++i) d[i] /= weight_[static_cast<size_t>(i)];
  }
  Tensor out = sum_;
  sum_ = Tensor();
  added_.clear();
  return out;
}

Tensor decode_tiles(LatentCodec& codec, const Tensor& latent, const TilePlan& plan,
                    const LatentCodec::Progress& progress) {
  std::unique_ptr<RegionDecoder> regions = codec.region_decoder(latent);
  TileBlender blender(plan);
  const int64_t n = static_cast<int64_t>(plan.tiles.size());
  for (int64_t i = 0; i < n; ++i) {
    blender.add(static_cast<size_t>(i), regions->decode(plan.tiles[static_cast<size_t>(i)].decoded));
    if (progress) progress(i + 1, n);
  }
  return blender.finish();
}

std::pair<int64_t, int64_t> choose_tile(const LatentCodec& codec, int64_t height, int64_t width, int64_t frames,
                                        double budget_bytes) {
  const LatentTiling tiling = codec.tiling();
  if (tiling.scale <= 0) fail("this VAE (", codec.variant(), ") cannot decode by tiles");
  const double region = codec.region_decode_bytes(height, width, frames);
  if (region <= 0) fail("this VAE (", codec.variant(), ") has no memory model; give --vae-tile HxW");
  // Untiled, the shared part's state lives beside the rest; tiled, it is done first.
  const double shared = codec.shared_decode_bytes(height, width, frames), whole = region + shared;
  if (whole <= budget_bytes) return {0, 0};
  if (shared > budget_bytes)
    fail("the VAE decode does not fit in ", budget_bytes / 1073741824.0, " GiB: its part over the whole latent",
         " needs ", shared / 1073741824.0, " GiB, whatever the tiles (raise --gpu-memory-limit)");
  // The fewest tiles that fit, then the least area decoded (context and overlap included).
  double best_area = 0;
  std::pair<int64_t, int64_t> best{-1, -1};
  double smallest = whole;
  for (int64_t k = 2; k <= std::min<int64_t>(kMaxTiles, height * width) && best.first < 0; ++k)
    for (int64_t rows = 1; rows <= std::min(k, height); ++rows) {
      if (k % rows) continue;
      const int64_t cols = k / rows;
      if (rows > height || cols > width) continue;
      const int64_t th = rows == 1 ? 0 : (height + rows - 1) / rows, tw = cols == 1 ? 0 : (width + cols - 1) / cols;
      // Blending codecs overlap by a quarter tile: grow the tile so `rows` of them still cover.
      const int64_t oh = tiling.exact_context > 0 || rows == 1 ? 0 : th / 4;
      const int64_t ow = tiling.exact_context > 0 || cols == 1 ? 0 : tw / 4;
      const int64_t gh = rows == 1 ? 0 : std::min(height - 1, th + oh), gw = cols == 1 ? 0 : std::min(width - 1, tw + ow);
      if ((rows > 1 && gh < 1) || (cols > 1 && gw < 1)) continue;
      const TilePlan plan = plan_tiles(tiling, height, width, gh, gw);
      int64_t mh = 0, mw = 0;
      double area = 0;
      for (const auto& t : plan.tiles) {
        mh = std::max(mh, t.decoded.height());
        mw = std::max(mw, t.decoded.width());
        area += static_cast<double>(t.decoded.height()) * t.decoded.width();
      }
      const double bytes = codec.region_decode_bytes(mh, mw, frames);
      smallest = std::min(smallest, bytes);
      if (bytes <= budget_bytes && (best.first < 0 || area < best_area)) {
        best = {gh, gw};
        best_area = area;
      }
    }
  if (best.first < 0)
    fail("the VAE decode does not fit in ", budget_bytes / 1073741824.0, " GiB: even its smallest tile needs ",
         smallest / 1073741824.0, " GiB (raise --gpu-memory-limit)");
  return best;
}

}  // namespace raylight
