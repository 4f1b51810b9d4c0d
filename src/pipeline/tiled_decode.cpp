#include "pipeline/tiled_decode.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace raylight {
namespace {

constexpr int64_t kMaxTilePixels = 1 << 16;
constexpr double kSpreadShare = 0.75;  // the most of the latent one rank's tile may decode
constexpr double kDecodeMargin = 256.0 * 1024 * 1024;  // staging, cuBLAS workspaces

int64_t tile_side(const std::string& text, const std::string& option, const std::string& whole) {
  if (text.empty() || text.size() > 6 || text.find_first_not_of("0123456789") != std::string::npos)
    fail(option, " takes HxW in pixels (e.g. 256x320), got '", whole, "'");
  const int64_t v = std::stoll(text);
  if (v < 1 || v > kMaxTilePixels) fail(option, " ", whole, ": each side must be 1..", kMaxTilePixels, " pixels");
  return v;
}

}  // namespace

VaeTileRequest parse_vae_tile(const std::string& text, const std::string& option) {
  const size_t x = text.find('x');
  if (x == std::string::npos) fail(option, " takes HxW in pixels (e.g. 256x320), got '", text, "'");
  VaeTileRequest r;
  r.tile_h = tile_side(text.substr(0, x), option, text);
  r.tile_w = tile_side(text.substr(x + 1), option, text);
  return r;
}

std::optional<TilePlan> vae_tile_plan(const LatentCodec& codec, const Shape& item, const VaeTileRequest& r) {
  if (item.size() < 3) fail("VAE decode: latent item shape ", shape_str(item), " has no height and width");
  const int64_t h = item[item.size() - 2], w = item[item.size() - 1], frames = item.size() == 4 ? item[1] : 1;
  const LatentTiling tiling = codec.tiling();
  if (r.tile_h > 0 || r.tile_w > 0) {
    if (tiling.scale <= 0) fail("--vae-tile: this VAE (", codec.variant(), ") cannot decode by tiles");
    if (r.tile_h % tiling.scale || r.tile_w % tiling.scale)
      fail("--vae-tile ", r.tile_h, "x", r.tile_w, ": sides must be multiples of ", tiling.scale,
           " pixels (one latent pixel of this VAE)");
    return plan_tiles(tiling, h, w, r.tile_h / tiling.scale, r.tile_w / tiling.scale);
  }
  if (tiling.scale <= 0 || (r.gpu_memory_limit <= 0 && r.ranks <= 1)) return std::nullopt;
  std::optional<TilePlan> plan;
  if (r.gpu_memory_limit > 0) {
    const double budget = r.gpu_memory_limit - r.held_bytes - codec.weight_bytes() - kDecodeMargin;
    const auto [th, tw] = choose_tile(codec, h, w, frames, budget);
    if (th || tw) plan = plan_tiles(tiling, h, w, th, tw);
  }
  if (r.ranks > 1 && (!plan || static_cast<int64_t>(plan->tiles.size()) < r.ranks)) {
    // A grid of `ranks` tiles (rows x columns = ranks), the least area decoded; smaller
    // than the memory's tiles, so it fits wherever they do.
    std::optional<TilePlan> best;
    double best_area = 0;
    for (int64_t rows = 1; rows <= r.ranks; ++rows) {
      if (r.ranks % rows || rows > h || r.ranks / rows > w) continue;
      const int64_t cols = r.ranks / rows;
      TilePlan p = plan_tiles(tiling, h, w, rows == 1 ? 0 : (h + rows - 1) / rows, cols == 1 ? 0 : (w + cols - 1) / cols);
      double area = 0;
      for (const auto& t : p.tiles) area += static_cast<double>(t.decoded.height()) * t.decoded.width();
      if (!best || area < best_area) {
        best = std::move(p);
        best_area = area;
      }
    }
    // Spread only where it pays: each rank's share (with its context) must be well under
    // the whole latent; a latent smaller than the context decodes whole on rank 0.
    if (best) {
      double most = 0;
      for (const auto& t : best->tiles) most = std::max(most, static_cast<double>(t.decoded.height()) * t.decoded.width());
      if (plan || most <= kSpreadShare * static_cast<double>(h) * static_cast<double>(w)) plan = std::move(best);
    }
  }
  return plan;
}

Tensor broadcast_tensor(Communicator& group, const Tensor& t, int root) {
  if (group.size() == 1) return t.to_f32();
  const bool mine = group.rank() == root;
  Tensor src = mine ? t.to_f32() : Tensor();
  uint64_t ndim = mine ? src.shape().size() : 0;
  group.broadcast(&ndim, sizeof ndim, root);
  if (ndim > 8) fail("broadcast_tensor: internal error, ", ndim, " dimensions");
  Shape shape(ndim);
  if (mine) shape = src.shape();
  group.broadcast(shape.data(), ndim * sizeof(int64_t), root);
  if (!mine) src = Tensor::empty(shape);
  group.broadcast(src.raw(), src.nbytes(), root);
  return src;
}

Tensor decode_tiles_on_ranks(LatentCodec& codec, const Tensor& latent, const TilePlan& plan, Communicator& group,
                             const LatentCodec::Progress& progress) {
  const Tensor x = broadcast_tensor(group, latent);
  std::unique_ptr<RegionDecoder> regions = codec.region_decoder(x);
  TileBlender blender(plan);
  const int64_t n = static_cast<int64_t>(plan.tiles.size()), size = group.size(), rank = group.rank();
  constexpr int kHead = 5;  // ndim, then up to 4 dims
  for (int64_t k = 0; k * size < n; ++k) {
    const int64_t i = k * size + rank;
    Tensor mine = i < n ? regions->decode(plan.tiles[static_cast<size_t>(i)].decoded).to_f32() : Tensor();
    if (size == 1) {
      blender.add(static_cast<size_t>(i), mine);
    } else {
      int64_t head[kHead] = {0, 0, 0, 0, 0};
      if (mine.defined()) {
        if (mine.ndim() > kHead - 1) fail("tiled decode: tile of shape ", shape_str(mine.shape()));
        head[0] = mine.ndim();
        for (int64_t d = 0; d < mine.ndim(); ++d) head[1 + d] = mine.dim(d);
      }
      std::vector<int64_t> heads(static_cast<size_t>(kHead * size));
      group.all_gather(head, heads.data(), sizeof head);
      int64_t most = 0;
      std::vector<Shape> shapes(static_cast<size_t>(size));
      for (int64_t j = 0; j < size; ++j) {
        const int64_t* h = heads.data() + kHead * j;
        if (h[0] < 0 || h[0] > kHead - 1) fail("tiled decode: internal error, a rank sent ", h[0], " dimensions");
        shapes[static_cast<size_t>(j)] = Shape(h + 1, h + 1 + h[0]);
        if (h[0]) most = std::max(most, shape_numel(shapes[static_cast<size_t>(j)]));
      }
      std::vector<float> send(static_cast<size_t>(most), 0.0f), recv(static_cast<size_t>(most * size));
      if (mine.defined()) std::memcpy(send.data(), mine.f32(), mine.nbytes());
      group.all_gather(send.data(), recv.data(), send.size() * sizeof(float));
      if (rank == 0)
        for (int64_t j = 0; j < size && k * size + j < n; ++j) {
          Tensor tile = Tensor::empty(shapes[static_cast<size_t>(j)]);
          std::memcpy(tile.f32(), recv.data() + most * j, tile.nbytes());
          blender.add(static_cast<size_t>(k * size + j), tile);
        }
    }
    if (progress) progress(std::min(n, (k + 1) * size), n);
  }
  return rank == 0 ? blender.finish() : Tensor();
}

}  // namespace raylight
