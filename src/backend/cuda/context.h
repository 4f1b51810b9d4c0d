// What every op of the CUDA backend shares: the compute stream, the caching allocator, the
// cuBLASLt and cuDNN handles, the transfer queue, the pinned staging buffers, the rotary
// table cache and the profiler. The op files (ops_*.cpp, declared in ops.h) take a Context&
// and queue kernels on its stream, the way ggml-cuda's op files take their backend context;
// cuda_backend.cpp only routes the Backend interface to them. Operands arrive checked by
// the public ops (backend.cpp, ops/*.cpp): bf16 activations on this device, contiguous.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"

namespace raylight::cuda {

class CudnnAttention;
class DeviceAllocator;
class Gemm;
class TransferQueue;

using bf16 = __nv_bfloat16;

// The profiler's categories. kDetail brackets a step inside an op already timed under
// another category: it shows in the per-op breakdown only, so nothing is counted twice.
enum Category { kMatmul, kAttention, kOther, kDetail };

// The device pointer of a bf16 tensor.
inline bf16* bp(const Tensor& t) { return static_cast<bf16*>(const_cast<void*>(t.raw())); }

class Context {
 public:
  explicit Context(const CudaOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  CudaOptions opt;
  cudaStream_t stream = nullptr;
  std::shared_ptr<DeviceAllocator> allocator;
  std::unique_ptr<Gemm> gemm;
  std::unique_ptr<CudnnAttention> cudnn;  // null: our own attention kernel
  std::unique_ptr<CudnnAttention> cudnn_fp8_op;  // the attention_fp8 op's when cudnn is null
  std::unique_ptr<TransferQueue> transfers;
  std::string device_name;

  // Uninitialised device storage (NaN-poisoned with CudaOptions::poison).
  Tensor alloc(const Shape& shape, DType dtype);
  // Host bytes -> device, through the two pinned buffers in turn.
  void stage(const void* src, void* dst, size_t bytes);
  // Host float tensor (any storage dtype) * scale -> device bf16.
  Tensor stage_as_bf16(const Tensor& src, float scale);
  // Device tensor (any float storage dtype, its scale applied) -> device bf16.
  Tensor to_bf16(const Tensor& t);
  // A device copy of a device tensor (any dtype, its scale kept).
  Tensor copy(const Tensor& x);
  // Host tensor -> device bf16 activation; device tensor -> host fp32.
  Tensor upload(const Tensor& host);
  Tensor download(const Tensor& t);
  // A rotary table (host fp32, or on this device) as device fp32, cached per source tensor.
  const float* device_table(const Tensor& table);
  // The CPU reference, for the few shapes no kernel here covers.
  Backend& host_reference();

  // Profiling: Scope brackets one op with events while profiling is on, under its category
  // and a name (by default the function that opens it) for the per-op breakdown.
  struct Scope {
    Scope(Context& ctx, Category cat, double flops = 0, const char* name = __builtin_FUNCTION());
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    Context& ctx;
    Category cat;
    double flops;
    const char* name;
    cudaEvent_t start = nullptr;
  };
  bool profiling = false;
  CudaProfile profile();  // waits for the device, folds the timed ops into the totals
  CudaProfile totals;
  cudaEvent_t event();
  void recycle(cudaEvent_t e) { event_pool_.push_back(e); }

 private:
  static constexpr size_t kStageBytes = 32u << 20;
  struct TimedOp {
    Category cat;
    cudaEvent_t a, b;
    double flops;
    const char* name;
  };
  void* pinned_[2] = {nullptr, nullptr};
  cudaEvent_t staged_[2] = {nullptr, nullptr};
  unsigned turn_ = 0;
  std::deque<std::pair<Tensor, Tensor>> rope_cache_;
  std::vector<TimedOp> timed_ops_;
  std::vector<cudaEvent_t> event_pool_;
  std::unique_ptr<Backend> host_reference_;
};

// Whether a storage dtype is one of the float formats upload / weight convert from.
bool is_storage_float(DType t);

}  // namespace raylight::cuda
