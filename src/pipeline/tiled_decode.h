// The VAE decode by tiles, spread over a job's ranks. The tiles (models/common/latent_tiles.h)
// are dealt round-robin: in round k, rank j decodes tile k * ranks + j on its own backend;
// each round's tiles are gathered and rank 0 blends them in tile order, so the picture is
// the single-rank tiled decode's, bit for bit, on any number of ranks. Every rank holds the
// codec (a memory-mapped checkpoint: the page cache is shared, device memory is the
// weights once per rank) and does the codec's whole-latent part itself (Wan: up to the
// middle attention, a small share of the work).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "dist/communicator.h"
#include "models/common/latent_tiles.h"
#include "models/family.h"

namespace raylight {

// How to tile: --vae-tile HxW (pixels; 0x0: not given), --gpu-memory-limit (bytes; 0: none).
struct VaeTileRequest {
  int64_t tile_h = 0, tile_w = 0;
  double gpu_memory_limit = 0;
  // Bytes of that limit already held when the decode runs (the DiT's weights).
  double held_bytes = 0;
  // Ranks that decode: with more than one, a tileable codec's latent is split into at
  // least this many tiles even when one would fit.
  int ranks = 1;
};

// Parses "HxW" (pixels, e.g. 256x320); errors name the option and the value.
VaeTileRequest parse_vae_tile(const std::string& text, const std::string& option = "--vae-tile");

// The plan for a latent item, or none when the decode runs whole: tiles of the requested
// size (multiples of the codec's scale), or the largest the memory limit allows, split
// further so that every rank has a tile where that pays (each rank's tile with its context
// at most 3/4 of the latent; a small latent decodes whole on rank 0).
std::optional<TilePlan> vae_tile_plan(const LatentCodec& codec, const Shape& item, const VaeTileRequest& request);

// Every rank of `group` calls it with its own codec; rank 0's latent is decoded (the others'
// `latent` is ignored). Rank 0 gets the picture, the others an undefined tensor.
Tensor decode_tiles_on_ranks(LatentCodec& codec, const Tensor& latent, const TilePlan& plan, Communicator& group,
                             const LatentCodec::Progress& progress = {});

// The root's tensor (fp32, any shape) on every rank of `group`.
Tensor broadcast_tensor(Communicator& group, const Tensor& t, int root = 0);

}  // namespace raylight
