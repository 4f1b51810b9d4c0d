// A few 32-bit constants written to device memory in the order of a stream, carried as the
// arguments of a one-thread kernel. Why not cudaMemcpy: a plain cudaMemcpy runs on the legacy
// default stream, which never orders against our non-blocking compute stream, and from
// pageable memory it may return before its bytes land; a cudaMemcpyAsync from a stack array
// depends on the driver staging pageable memory before it returns. Kernel arguments are
// copied at launch, so the host values may go at once and every later kernel on the stream
// sees the constants.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace raylight::cuda {

// The most words one call writes.
constexpr int kMaxDeviceConstants = 32;

// dst[i] = words[i] for i < n (n <= kMaxDeviceConstants), 4-byte words of any type (float,
// int32), queued on s.
void write_device_constants(void* dst, const void* words, int n, cudaStream_t s);

}  // namespace raylight::cuda
