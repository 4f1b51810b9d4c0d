#include "dist/mesh.h"

#include <cstdint>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace raylight {

std::string ParallelLayout::describe() const {
  std::ostringstream os;
  os << "ulysses " << ulysses << " x ring " << ring << " x cfg " << cfg << " x dp " << dp;
  return os.str();
}

MeshCoords mesh_coords(const ParallelLayout& l, int rank) {
  MeshCoords c;
  c.ulysses = rank % l.ulysses;
  c.ring = (rank / l.ulysses) % l.ring;
  c.cfg = (rank / (l.ulysses * l.ring)) % l.cfg;
  c.dp = rank / (l.ulysses * l.ring * l.cfg);
  return c;
}

ParallelLayout resolve_layout(ParallelLayout l, int world, int64_t heads) {
  if (!l.auto_sequence) return l;
  l.auto_sequence = false;
  const int groups = l.cfg * l.dp;
  if (groups <= 0 || world % groups != 0) return l;  // validate_layout explains
  const int seq = world / groups;
  l.ring = 1;
  l.ulysses = 1;
  for (int u = seq; u >= 1; --u)
    if (seq % u == 0 && heads % u == 0) {
      l.ulysses = u;
      l.ring = seq / u;
      break;
    }
  return l;
}

void validate_layout(const ParallelLayout& l, int world, int64_t heads) {
  if (l.ulysses < 1 || l.ring < 1 || l.dp < 1 || (l.cfg != 1 && l.cfg != 2))
    fail("parallel degrees must be >= 1 (cfg parallel uses 2 ranks), got ", l.describe());
  if (heads % l.ulysses != 0) {
    std::ostringstream ok;
    for (int d = 1; d <= heads && d <= 64; ++d)
      if (heads % d == 0) ok << (d > 1 ? ", " : "") << d;
    fail("--ulysses ", l.ulysses, " does not divide the model's ", heads,
         " attention heads; Ulysses degrees that work: ", ok.str(),
         " (use --ring for the rest of the split)");
  }
  if (l.world() != world) {
    std::ostringstream hint;
    const int seq = world / (l.cfg * l.dp);
    if (world % (l.cfg * l.dp) == 0 && seq >= 1) {
      hint << "; with " << (l.cfg == 2 ? "--cfg-parallel " : "")
           << (l.dp > 1 ? "--dp " + std::to_string(l.dp) + " " : "") << "the sequence split must be "
           << seq << " ranks, e.g.";
      bool any = false;
      for (int u = 1; u <= seq; ++u)
        if (seq % u == 0 && heads % u == 0) {
          hint << (any ? " or" : "") << " --ulysses " << u << " --ring " << seq / u;
          any = true;
        }
    }
    fail("layout ", l.describe(), " needs ", l.world(), " ranks but the job has ", world,
         hint.str());
  }
}

}  // namespace raylight
