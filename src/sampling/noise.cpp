// Counter-based Gaussian noise (SplitMix64 + Box–Muller); the exact formula is in noise.h.
// Pairs are the unit of work: one pair of uniforms gives the cos (even) and sin (odd)
// elements, so a range that starts or ends mid-pair computes that pair and keeps one half.
#include "sampling/noise.h"

#include <cmath>

#include "core/error.h"

namespace raylight {

namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr double kTwoPi = 6.283185307179586;
constexpr double kInv2p53 = 1.0 / 9007199254740992.0;  // 2^-53

// Stream output n for `seed`: mix(seed + (n + 1) * G).
inline uint64_t stream_output(uint64_t seed, uint64_t n) {
  return splitmix64(seed + n * kGolden);
}

// Both Box–Muller outputs of pair p.
inline void gaussian_pair(uint64_t seed, uint64_t p, double* even, double* odd) {
  uint64_t a = stream_output(seed, 2 * p);
  uint64_t b = stream_output(seed, 2 * p + 1);
  double u1 = static_cast<double>((a >> 11) + 1) * kInv2p53;
  double u2 = static_cast<double>(b >> 11) * kInv2p53;
  double r = std::sqrt(-2.0 * std::log(u1));
  double t = kTwoPi * u2;
  *even = r * std::cos(t);
  *odd = r * std::sin(t);
}

}  // namespace

uint64_t splitmix64(uint64_t state) {
  uint64_t z = state + kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

void gaussian_fill(float* out, int64_t begin, int64_t count, uint64_t seed) {
  if (begin < 0 || count < 0)
    fail("gaussian_fill: bad range begin=", begin, " count=", count);
  int64_t end = begin + count;
  int64_t i = begin;
  while (i < end) {
    double even, odd;
    gaussian_pair(seed, static_cast<uint64_t>(i) / 2, &even, &odd);
    if ((i & 1) == 0) {
      out[i - begin] = static_cast<float>(even);
      ++i;
      if (i < end) {
        out[i - begin] = static_cast<float>(odd);
        ++i;
      }
    } else {
      out[i - begin] = static_cast<float>(odd);
      ++i;
    }
  }
}

Tensor gaussian_noise(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape);
  gaussian_fill(t.f32(), 0, t.numel(), seed);
  return t;
}

uint64_t name_seed(std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

}  // namespace raylight
