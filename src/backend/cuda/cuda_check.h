// Error checks for CUDA runtime and cuBLASLt calls, shared by every file of the CUDA
// backend. A failing call is a bug or a broken device, never user input, but it is still
// thrown as raylight::Error so the CLI prints one line naming the call and where it was.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "core/error.h"

#define RL_CUDA(call)                                                                  \
  do {                                                                                 \
    cudaError_t rl_err_ = (call);                                                      \
    if (rl_err_ != cudaSuccess)                                                        \
      ::raylight::fail("CUDA error ", cudaGetErrorString(rl_err_), " in ", #call, " (", \
                       __FILE__, ":", __LINE__, ")");                                  \
  } while (0)

// After every kernel launch: catches bad launch configurations at the launch site.
#define RL_CUDA_LAUNCH() RL_CUDA(cudaGetLastError())

#define RL_CUBLAS(call)                                                                   \
  do {                                                                                    \
    cublasStatus_t rl_st_ = (call);                                                       \
    if (rl_st_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::raylight::fail("cuBLASLt error ", static_cast<int>(rl_st_), " in ", #call, " (", \
                       __FILE__, ":", __LINE__, ")");                                     \
  } while (0)
