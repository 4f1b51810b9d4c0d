// See device_constants.h: constants travel as kernel arguments, written by one thread.
#include "backend/cuda/device_constants.h"

#include <cstring>

#include "backend/cuda/cuda_check.h"

namespace raylight::cuda {
namespace {

struct Words {
  uint32_t w[kMaxDeviceConstants];
};

__global__ void write_words_kernel(uint32_t* __restrict__ dst, Words words, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = words.w[i];
}

}  // namespace

void write_device_constants(void* dst, const void* words, int n, cudaStream_t s) {
  if (n < 0 || n > kMaxDeviceConstants) fail("write_device_constants: 0 to ", kMaxDeviceConstants, " words, got ", n);
  if (n == 0) return;
  if (reinterpret_cast<uintptr_t>(dst) % 4 != 0) fail("write_device_constants: destination not 4-byte aligned");
  Words w{};
  std::memcpy(w.w, words, sizeof(uint32_t) * n);
  write_words_kernel<<<1, 32, 0, s>>>(static_cast<uint32_t*>(dst), w, n);
  RL_CUDA_LAUNCH();
}

}  // namespace raylight::cuda
