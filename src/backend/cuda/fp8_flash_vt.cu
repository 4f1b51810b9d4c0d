// V^T for our fp8 kernel (fp8_flash.h): rows of [H x D] channels over the keys, in the key
// order P's registers have within every 32 keys. Made from V's codes, or from bf16 V in the
// same pass that quantises it (no codes in [Lk, C] written and read back).
#include <cuda_fp8.h>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_flash.h"
#include "core/error.h"

namespace raylight::cuda {
namespace {

constexpr int kD = 128;     // channels per block: one head
constexpr int kKeys = 32;   // keys per block of the codes' transpose (one permutation group)
constexpr int kThreads = 256;

// 32 keys x 128 channels of codes in tile -> vt: a thread writes 16 keys of one channel.
__device__ __forceinline__ void write_group(const uint8_t (*tile)[kD + 16], int key0, int64_t c0, int64_t k0,
                                            int64_t Lkp, uint8_t* __restrict__ vt) {
  const int ch = threadIdx.x / 2, half = threadIdx.x % 2;
  uint32_t w[4];
#pragma unroll
  for (int q = 0; q < 4; ++q) {
    uint32_t word = 0;
#pragma unroll
    for (int b = 0; b < 4; ++b)
      word |= uint32_t(tile[key0 + fp8_flash_key_order(16 * half + 4 * q + b)][ch]) << (8 * b);
    w[q] = word;
  }
  *reinterpret_cast<uint4*>(vt + (c0 + ch) * Lkp + k0 + 16 * half) = make_uint4(w[0], w[1], w[2], w[3]);
}

__global__ void transpose_v_kernel(const uint8_t* __restrict__ v8, int64_t Lk, int64_t C, int64_t Lkp,
                                   uint8_t* __restrict__ vt) {
  __shared__ uint8_t tile[kKeys][kD + 16];
  const int64_t k0 = int64_t(blockIdx.x) * kKeys, c0 = int64_t(blockIdx.y) * kD;
  {  // 32 keys x 128 channels: 16 bytes a thread
    const int key = threadIdx.x / 8, part = threadIdx.x % 8;
    uint4 x = make_uint4(0, 0, 0, 0);
    if (k0 + key < Lk) x = *reinterpret_cast<const uint4*>(v8 + (k0 + key) * C + c0 + 16 * part);
    *reinterpret_cast<uint4*>(&tile[key][16 * part]) = x;
  }
  __syncthreads();
  write_group(tile, 0, c0, k0, Lkp, vt);
}

// The quantising form: 64 keys x 128 channels a block (two permutation groups, so each
// channel's row gets 64 contiguous bytes). A thread converts 8 channels of a key per step,
// with fp8_quantise.cu's arithmetic: e4m3(satfinite((x - sum * inv_n) * scale)), each step
// rounded on its own, so the codes are the ones quantise_fp8_operands would have written.
constexpr int kQuantKeys = 64;

__global__ void quantise_v_kernel(const __nv_bfloat16* __restrict__ v, int64_t Lk, int64_t C, int64_t Lkp,
                                  const float* __restrict__ sum, float inv_n, const float* __restrict__ scale_p,
                                  uint8_t* __restrict__ vt) {
  __shared__ uint8_t tile[kQuantKeys][kD + 16];
  const int64_t k0 = int64_t(blockIdx.x) * kQuantKeys, c0 = int64_t(blockIdx.y) * kD;
  const float scale = scale_p[0];
  const int part = threadIdx.x % 16;  // channels 8 part .. 8 part + 7
  float mean[8];
#pragma unroll
  for (int j = 0; j < 8; ++j) mean[j] = sum ? __fmul_rn(sum[c0 + 8 * part + j], inv_n) : 0.0f;
#pragma unroll
  for (int step = 0; step < kQuantKeys / (kThreads / 16); ++step) {
    const int key = step * (kThreads / 16) + threadIdx.x / 16;
    uint2 codes = make_uint2(0, 0);
    if (k0 + key < Lk) {
      const uint4 raw = *reinterpret_cast<const uint4*>(v + (k0 + key) * C + c0 + 8 * part);
      const uint32_t w[4] = {raw.x, raw.y, raw.z, raw.w};
      uint32_t pair[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float lo = __uint_as_float(w[i] << 16), hi = __uint_as_float(w[i] & 0xffff0000u);
        const float2 f = make_float2(__fmul_rn(__fsub_rn(lo, mean[2 * i]), scale),
                                     __fmul_rn(__fsub_rn(hi, mean[2 * i + 1]), scale));
        pair[i] = __nv_cvt_float2_to_fp8x2(f, __NV_SATFINITE, __NV_E4M3);
      }
      codes = make_uint2(pair[0] | (pair[1] << 16), pair[2] | (pair[3] << 16));
    }
    *reinterpret_cast<uint2*>(&tile[key][8 * part]) = codes;
  }
  __syncthreads();
#pragma unroll
  for (int g = 0; g < kQuantKeys / kKeys; ++g)
    if (k0 + g * kKeys < Lkp) write_group(tile, g * kKeys, c0, k0 + g * kKeys, Lkp, vt);
}

void check_columns(const char* what, int64_t Lk, int64_t C) {
  if (C % kD != 0 || C < kD || Lk < 1) fail(what, ": ", C, " columns are not whole heads of 128 (or no keys)");
}

}  // namespace

void fp8_flash_transpose_v(const uint8_t* v8, int64_t Lk, int64_t C, uint8_t* vt, cudaStream_t s) {
  check_columns("fp8_flash_transpose_v", Lk, C);
  const int64_t Lkp = fp8_flash_keys(Lk);
  const dim3 grid(static_cast<unsigned>(Lkp / kKeys), static_cast<unsigned>(C / kD));
  transpose_v_kernel<<<grid, kThreads, 0, s>>>(v8, Lk, C, Lkp, vt);
  RL_CUDA_LAUNCH();
}

void fp8_flash_quantise_v(const bf16* v, int64_t Lk, int64_t C, const float* sum, int64_t stat_rows,
                          const float* scale, uint8_t* vt, cudaStream_t s) {
  check_columns("fp8_flash_quantise_v", Lk, C);
  if (sum && (stat_rows < 1 || stat_rows > Lk)) fail("fp8_flash_quantise_v: ", stat_rows, " stat rows of ", Lk, " keys");
  const int64_t Lkp = fp8_flash_keys(Lk);
  // 1 / stat_rows rounded on the host, as quantise_fp8_operands rounds it.
  const float inv_n = sum ? 1.0f / static_cast<float>(stat_rows) : 0.0f;
  const dim3 grid(static_cast<unsigned>((Lkp + kQuantKeys - 1) / kQuantKeys), static_cast<unsigned>(C / kD));
  quantise_v_kernel<<<grid, kThreads, 0, s>>>(v, Lk, C, Lkp, sum, inv_n, scale, vt);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
