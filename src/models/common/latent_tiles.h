// Spatial tiles of a latent for a tileable LatentCodec (models/family.h): where the tiles
// go, and how their pixels are put back together. Nothing here knows ranks: the pipeline
// (pipeline/tiled_decode.h) decides who decodes which tile and feeds the results, in tile
// order, to a TileBlender, so any spread of the tiles gives the same bits.
//
// A tile has a core (the latent pixels it covers, overlapping its neighbours by `overlap`)
// and is decoded over its core grown by the codec's exact context (clamped to the latent);
// the context's pixels are cut away again. Where cores overlap, pixels blend linearly: each
// tile's weight ramps from 0 to 1 across the overlap with a neighbour, and the result is
// sum(w_i * p_i) / sum(w_i). Bound: with context >= the codec's exact context, every tile's
// core pixels are the untiled decode's (the decode of a pixel reads only that far), so a
// tiled decode differs from the untiled one only by the blend's rounding (0 without
// overlap: a pixel of one tile is copied) and by the backend's arithmetic on other
// operand shapes (GPU products). Without an exact context (global attention inside the
// codec) the overlap and blend hide the seams, and the difference is the codec's to state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/family.h"

namespace raylight {

struct LatentTile {
  LatentRegion core;     // what the tile covers
  LatentRegion decoded;  // the core with its context, the region the codec decodes
};

struct TilePlan {
  int64_t height = 0, width = 0;  // the latent's, in latent pixels
  int64_t scale = 0;              // pixels per latent pixel
  int64_t overlap = 0;            // latent pixels neighbouring cores share (at least)
  int64_t context = 0;            // latent pixels decoded around each core
  std::vector<LatentTile> tiles;  // row by row
  int64_t rows = 0, columns = 0;  // the grid
};

// Tiles of at most tile_h x tile_w latent pixels (cores, overlap included; 0 or more than
// the latent: one tile along that axis) over a height x width latent. overlap < 0: the
// codec's default (0 with an exact context, else a quarter of the smaller tile side).
// Errors name the bad value.
TilePlan plan_tiles(const LatentTiling& tiling, int64_t height, int64_t width, int64_t tile_h, int64_t tile_w,
                    int64_t overlap = -1);

// "2 x 3 tiles of 48x64 latent pixels (384x512 pixels), overlap 0, context 15".
std::string describe(const TilePlan& plan);

// The latent pixels of `latent` ([C, F, H, W] or [C, H, W], host) inside region r.
Tensor crop_latent(const Tensor& latent, const LatentRegion& r);

// Collects decoded tiles, in any order of arrival but added in tile order for the same bits,
// into the whole picture [3, (F,) H*scale, W*scale].
class TileBlender {
 public:
  explicit TileBlender(const TilePlan& plan) : plan_(plan) {}
  // The pixels the codec made for plan.tiles[i].decoded.
  void add(size_t i, const Tensor& decoded_pixels);
  // The blended picture; every tile must have been added.
  Tensor finish();

 private:
  // Per pixel row (or column) of tile i's core: its blend weight along that axis.
  std::vector<float> ramp(int64_t begin, int64_t end, int64_t prev_end, int64_t next_begin) const;
  const TilePlan& plan_;
  Tensor sum_;                  // sum of w * p
  std::vector<float> weight_;   // sum of w, per pixel of one plane
  std::vector<bool> added_;
};

// Every tile of `plan` decoded here, blended: the single-process tiled decode.
Tensor decode_tiles(LatentCodec& codec, const Tensor& latent, const TilePlan& plan,
                    const LatentCodec::Progress& progress = {});

// The largest tiles (fewest, then the least decoded area) whose region decode fits in
// `budget_bytes` by the codec's memory model, as a tile_h x tile_w pair of latent pixels;
// {0, 0} (untiled) when the whole latent fits. Fails, naming the budget, when not even the
// smallest tile fits or the codec has no memory model.
std::pair<int64_t, int64_t> choose_tile(const LatentCodec& codec, int64_t height, int64_t width, int64_t frames,
                                        double budget_bytes);

}  // namespace raylight
