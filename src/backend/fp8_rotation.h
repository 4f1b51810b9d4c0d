// The rotation fp8 attention applies to q and k before quantising them (FlashAttention-3's
// "incoherent processing"): each head's vector x becomes H S x / sqrt(D), S a fixed diagonal
// of signs and H the D x D Hadamard matrix in natural (Sylvester) order. H S / sqrt(D) is
// orthogonal, so q . k is unchanged; what changes is that a few large channels are spread
// over all D, so e4m3's per-element rounding no longer lands on the products that dominate
// the score (bench/attention_lab/fp8_error_model.py: 4x outlier channels 5.1 % -> 1.8 %,
// 16x 32 % -> 5.5 %, random inputs unchanged). One definition for the CPU emulation and the
// CUDA kernels, so both round the same values.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define RAYLIGHT_FP8_HD __host__ __device__
#else
#define RAYLIGHT_FP8_HD
#endif

namespace raylight {

// Head sizes the rotation serves: powers of two from 16 to 256 (a CUDA warp holds one head
// of 256 as 32 lanes x 8 values). Others are quantised unrotated.
RAYLIGHT_FP8_HD inline bool fp8_rotates(int64_t D) { return D >= 16 && D <= 256 && (D & (D - 1)) == 0; }

// S's entry for channel d of a head: -1 where this returns true. A fixed pseudo-random pattern
// (a multiplicative hash with a mix; the constant chosen so that no Hadamard row of any head
// size from 16 to 256 is close to it: a constant vector rotates to entries of at most
// 0.32 sqrt(D), where the unsigned transform would put all of it on one channel).
RAYLIGHT_FP8_HD inline bool fp8_rotation_flips(int64_t d) {
  uint32_t h = static_cast<uint32_t>(d + 1) * 0x6554ba47u;
  h ^= h >> 15;
  h *= 0x2c1b3c6du;
  h ^= h >> 12;
  return (h >> 31) & 1u;
}

// v [D] <- H v (unnormalised, natural order) in place: the fast Walsh-Hadamard transform's
// butterflies, in the order the CUDA kernels do them across their lanes.
inline void hadamard_butterflies(float* v, int64_t D) {
  for (int64_t s = 1; s < D; s <<= 1)
    for (int64_t d = 0; d < D; ++d)
      if ((d & s) == 0) {
        const float a = v[d], b = v[d + s];
        v[d] = a + b;
        v[d + s] = a - b;
      }
}

// v [D] <- H S v / sqrt(D) in place on the host (fp32: signs, then the butterflies of the fast
// Walsh-Hadamard transform, as the CUDA kernel does them across its lanes). D: fp8_rotates.
inline void fp8_rotate_head(float* v, int64_t D) {
  for (int64_t d = 0; d < D; ++d)
    if (fp8_rotation_flips(d)) v[d] = -v[d];
  hadamard_butterflies(v, D);
  const float norm = 1.0f / std::sqrt(static_cast<float>(D));
  for (int64_t d = 0; d < D; ++d) v[d] *= norm;
}

// v [D] <- S H v / sqrt(D) in place on the host: the inverse (and transpose) of fp8_rotate_head,
// which takes a vector of rotated space back (fp8 attention's K mean, for its lse).
inline void fp8_unrotate_head(float* v, int64_t D) {
  hadamard_butterflies(v, D);
  const float norm = 1.0f / std::sqrt(static_cast<float>(D));
  for (int64_t d = 0; d < D; ++d) v[d] = fp8_rotation_flips(d) ? -v[d] * norm : v[d] * norm;
}

}  // namespace raylight
