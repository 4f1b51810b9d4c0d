// Default implementations of the video VAE ops: a host round trip through the CPU kernels
// (the same pattern as swap_leading / merge_attention in backend.cpp), so every backend
// decodes correctly before it has kernels of its own; device backends override these.
// Kept apart from backend.cpp so the VAE's ops and the DiT's ops evolve independently.
#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"

namespace raylight {

Tensor Backend::conv3d(const Tensor& x, const Tensor& past, const Tensor& w, const Tensor& b,
                       const Conv3dSpec& spec) {
  return upload(cpu::conv3d(download(x), past.defined() ? download(past) : Tensor(), download(w),
                            b.defined() ? download(b) : Tensor(), spec));
}

Tensor Backend::channel_rms_norm(const Tensor& x, const Tensor& gamma, bool silu) {
  return upload(cpu::channel_rms_norm(download(x), download(gamma), silu));
}

Tensor Backend::upsample_nearest2x(const Tensor& x) {
  return upload(cpu::upsample_nearest2x(download(x)));
}

}  // namespace raylight
