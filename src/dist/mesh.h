// How ranks are arranged: world = dp x cfg x ring x ulysses, ulysses fastest. One place
// answers "which group am I in" for every kind of parallelism.
#pragma once

#include <string>

namespace raylight {

struct ParallelLayout {
  int ulysses = 1, ring = 1, cfg = 1, dp = 1;
  bool auto_sequence = false;  // split what cfg and dp leave, Ulysses first, Ring for the rest
  int world() const { return ulysses * ring * cfg * dp; }
  int sequence() const { return ulysses * ring; }
  std::string describe() const;
};

struct MeshCoords {
  int dp = 0, cfg = 0, ring = 0, ulysses = 0;
};

MeshCoords mesh_coords(const ParallelLayout& layout, int rank);

// Fills an automatic sequence split for a job of `world_size` ranks and a model of `heads`:
// the largest Ulysses degree dividing both the split and the heads, Ring for the rest.
ParallelLayout resolve_layout(ParallelLayout layout, int world_size, int64_t heads);

// Checks the layout against the job's ranks and the model's attention heads; the error
// says what would work instead.
void validate_layout(const ParallelLayout& layout, int world_size, int64_t heads);

}  // namespace raylight
