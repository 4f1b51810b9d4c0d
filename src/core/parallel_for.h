// A persistent worker pool for the CPU backend. Ops split their outermost loop into
// contiguous chunks; workers are started once, because spawning threads per op would
// dominate the small shapes tests use.
#pragma once

#include <cstdint>
#include <functional>

namespace raylight {

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` items, on all cores.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int cpu_threads();

}  // namespace raylight
