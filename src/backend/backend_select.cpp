#include "backend/backend_select.h"

#include "core/error.h"

#ifdef RAYLIGHT_HAVE_CUDA
#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#endif

namespace raylight {

bool backend_choice_from_name(const std::string& name, BackendChoice* out) {
  if (name == "auto") *out = BackendChoice::Auto;
  else if (name == "cpu") *out = BackendChoice::Cpu;
  else if (name == "cuda") *out = BackendChoice::Cuda;
  else return false;
  return true;
}

bool cuda_usable() {
#ifdef RAYLIGHT_HAVE_CUDA
  return cuda_device_available();
#else
  return false;
#endif
}

int usable_gpus() {
#ifdef RAYLIGHT_HAVE_CUDA
  int count = 0;
  if (!cuda_device_available() || cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
#else
  return 0;
#endif
}

bool resolves_to_cpu(BackendChoice choice) {
  return choice == BackendChoice::Cpu || (choice == BackendChoice::Auto && !cuda_usable());
}

bool attention_name_known(const std::string& name) {
  return name.empty() || name == "cudnn" || name == "own" || name == "fp8";
}

std::unique_ptr<Backend> make_backend(BackendChoice choice, int rank, const std::string& attention) {
  if (!attention_name_known(attention)) fail("--attention must be cudnn, own or fp8, got '", attention, "'");
  if (resolves_to_cpu(choice)) {
    if (!attention.empty())
      fail("--attention ", attention, " chooses a CUDA attention kernel; this run is on the CPU backend");
    return make_cpu_backend();
  }
#ifdef RAYLIGHT_HAVE_CUDA
  if (!cuda_device_available()) fail("--device cuda: no CUDA device is visible");
  int count = 1;
  cudaGetDeviceCount(&count);
  CudaOptions o;
  o.device = rank % (count > 0 ? count : 1);
  if (!attention.empty() && !attention_kernel_from_name(attention, &o.attention))
    fail("--attention must be cudnn, own or fp8, got '", attention, "'");
  return make_cuda_backend(o);
#else
  (void)rank;
  fail("--device cuda: this build has no CUDA backend (nvcc was not found at configure time)");
#endif
}

}  // namespace raylight
