// Seeded Gaussian noise that any rank can generate a slice of on its own.
//
// The generator is counter-based: element i of the flattened tensor is a pure function of
// (seed, i), so a sequence-parallel rank fills only its own slice and still gets exactly the
// bytes a single-process run would have (no RNG state to share or fast-forward). It is not
// torch's generator; the same seed gives different noise than ComfyUI/diffusers, by design:
// what matters here is that every Raylight run, on any number of ranks, agrees.
//
// Exact formula (another implementation can reproduce it bit for bit):
//
//   G        = 0x9E3779B97F4A7C15
//   mix(z)   : z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
//              z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
//              return z ^ (z >> 31);                        (all uint64, wrapping)
//   R(n)     = mix(seed + (n + 1) * G)                      (output n = 0, 1, 2, ... of the
//                                                            standard SplitMix64 stream that
//                                                            starts from state `seed`)
//   pair p   = i / 2 (integer division)
//   a = R(2p), b = R(2p + 1)
//   u1 = ((a >> 11) + 1) * 2^-53                            in (0, 1], so log(u1) is finite
//   u2 =  (b >> 11)      * 2^-53                            in [0, 1)
//   r  = sqrt(-2 * log(u1)),  t = 6.283185307179586 * u2    (the double nearest to 2*pi)
//   element i = (float)(r * cos(t))  if i is even
//               (float)(r * sin(t))  if i is odd
//
// u1, u2, r, t and the products are computed in IEEE double and rounded to float once at
// the end (round-to-nearest). log/sqrt/cos/sin come from the C library; libraries that are
// correctly rounded or within an ulp in double give identical floats except in rare ties.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/tensor.h"

namespace raylight {

// A fresh fp32 tensor of `shape` whose flattened element i is the value defined above.
Tensor gaussian_noise(const Shape& shape, uint64_t seed);

// Writes elements [begin, begin + count) of the flattened noise for `seed` into out[0..count).
// Throws raylight::Error when begin < 0 or count < 0.
void gaussian_fill(float* out, int64_t begin, int64_t count, uint64_t seed);

// One standard SplitMix64 output: mix(state + G) in the notation above (exposed for tests).
uint64_t splitmix64(uint64_t state);

// A stable 64-bit seed from a name (FNV-1a), so each named tensor of a deterministic
// model gets its own noise stream.
uint64_t name_seed(std::string_view name);

}  // namespace raylight
