// The shared state of the CUDA backend's ops (see context.h). Host<->device traffic goes
// through two pinned staging buffers used in turn, so a weight travels from the
// checkpoint's memory map to the GPU in chunks and never exists as a whole host copy.
#include "backend/cuda/context.h"

#include <algorithm>
#include <cstring>

#include "backend/cuda/allocator.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/gemm.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/transfer_queue.h"

namespace raylight::cuda {

bool is_storage_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8E4M3 || t == DType::F8E5M2;
}

Context::Context(const CudaOptions& o) : opt(o) {
  RL_CUDA(cudaSetDevice(o.device));
  RL_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  allocator = std::make_shared<DeviceAllocator>();
  gemm = std::make_unique<Gemm>(stream);
  transfers = std::make_unique<TransferQueue>(stream);
  for (int i = 0; i < 2; ++i) {
    RL_CUDA(cudaMallocHost(&pinned_[i], kStageBytes));
    RL_CUDA(cudaEventCreateWithFlags(&staged_[i], cudaEventDisableTiming));
    RL_CUDA(cudaEventRecord(staged_[i], stream));
  }
  cudaDeviceProp prop{};
  RL_CUDA(cudaGetDeviceProperties(&prop, o.device));
  device_name = prop.name;
}

Context::~Context() {
  cudaStreamSynchronize(stream);
  rope_cache_.clear();
  for (auto& p : timed_ops_) {
    event_pool_.push_back(p.a);
    event_pool_.push_back(p.b);
  }
  for (cudaEvent_t e : event_pool_) cudaEventDestroy(e);
  for (int i = 0; i < 2; ++i) {
    cudaEventDestroy(staged_[i]);
    cudaFreeHost(pinned_[i]);
  }
  gemm.reset();
  cudnn.reset();
  cudnn_fp8_op.reset();
  transfers.reset();
  cudaStreamDestroy(stream);
}

Tensor Context::alloc(const Shape& shape, DType dtype) {
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  std::shared_ptr<void> owner = allocator->allocate(bytes);
  if (opt.poison) RL_CUDA(cudaMemsetAsync(owner.get(), 0xFF, bytes, stream));
  return Tensor::device_view(owner.get(), shape, dtype, Device::CUDA, owner);
}

// Each pinned buffer is reused only once the copy that last read it has finished.
void Context::stage(const void* src, void* dst, size_t bytes) {
  for (size_t off = 0; off < bytes; off += kStageBytes) {
    const size_t n = std::min(kStageBytes, bytes - off);
    const int i = turn_++ & 1;
    RL_CUDA(cudaEventSynchronize(staged_[i]));
    std::memcpy(pinned_[i], static_cast<const char*>(src) + off, n);
    RL_CUDA(cudaMemcpyAsync(static_cast<char*>(dst) + off, pinned_[i], n, cudaMemcpyHostToDevice, stream));
    RL_CUDA(cudaEventRecord(staged_[i], stream));
  }
}

Tensor Context::stage_as_bf16(const Tensor& src, float scale) {
  Tensor y = alloc(src.shape(), DType::BF16);
  if (src.dtype() == DType::BF16 && scale == 1.0f) {
    stage(src.raw(), y.raw(), src.nbytes());
    return y;
  }
  Tensor raw = alloc(src.shape(), src.dtype());
  stage(src.raw(), raw.raw(), src.nbytes());
  convert_to_bf16(raw.raw(), src.dtype(), scale, bp(y), src.numel(), stream);
  return y;
}

Tensor Context::to_bf16(const Tensor& t) {
  if (!t.defined() || t.device() != Device::CUDA || !t.is_contiguous())
    fail("convert: expected a contiguous device tensor, got ", shape_str(t.shape()));
  Tensor y = alloc(t.shape(), DType::BF16);
  convert_to_bf16(t.raw(), t.dtype(), t.scale(), bp(y), t.numel(), stream);
  return y;
}

Tensor Context::copy(const Tensor& x) {
  Tensor y = alloc(x.shape(), x.dtype());
  RL_CUDA(cudaMemcpyAsync(y.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, stream));
  return y.with_scale(x.scale());
}

Tensor Context::upload(const Tensor& host) {
  if (host.device() == Device::CUDA) return host.dtype() == DType::BF16 ? copy(host) : to_bf16(host);
  Tensor src = host;
  if (!src.is_contiguous()) fail("upload of a non-contiguous tensor");
  if (!is_storage_float(src.dtype())) src = src.to_f32();
  return stage_as_bf16(src, 1.0f);
}

Tensor Context::download(const Tensor& t) {
  if (t.device() == Device::CPU) return t.to_f32().clone();
  Tensor f = t;
  if (t.dtype() != DType::F32) {
    Tensor b = t.dtype() == DType::BF16 ? t : to_bf16(t);
    f = alloc(t.shape(), DType::F32);
    bf16_to_f32(bp(b), f.data<float>(), b.numel(), stream);
  }
  Tensor out = Tensor::empty(t.shape());
  if (out.nbytes() == 0) return out;
  RL_CUDA(cudaMemcpyAsync(out.raw(), f.raw(), out.nbytes(), cudaMemcpyDeviceToHost, stream));
  RL_CUDA(cudaStreamSynchronize(stream));
  return out;
}

// Rotary tables arrive as host fp32 tensors (or already uploaded); each is made a device
// fp32 table once and kept with its source tensor, so that address cannot be reused by a
// different table while cached.
const float* Context::device_table(const Tensor& table) {
  if (table.device() == Device::CUDA && table.dtype() == DType::F32) return table.data<float>();
  for (auto& [host, dev] : rope_cache_)
    if (host.raw() == table.raw() && host.shape() == table.shape() && host.device() == table.device())
      return dev.data<float>();
  Tensor dev = alloc(table.shape(), DType::F32);
  if (table.device() == Device::CUDA) {
    // A table uploaded as an activation (bf16): widened once; cos/sin keep bf16 rounding.
    bf16_to_f32(bp(table), dev.data<float>(), table.numel(), stream);
  } else {
    Tensor src = table.to_f32();
    stage(src.raw(), dev.raw(), src.nbytes());
  }
  rope_cache_.emplace_back(table, dev);
  if (rope_cache_.size() > 4) rope_cache_.pop_front();
  return dev.data<float>();
}

Backend& Context::host_reference() {
  if (!host_reference_) host_reference_ = make_cpu_backend();
  return *host_reference_;
}

cudaEvent_t Context::event() {
  if (!event_pool_.empty()) {
    cudaEvent_t e = event_pool_.back();
    event_pool_.pop_back();
    return e;
  }
  cudaEvent_t e;
  RL_CUDA(cudaEventCreate(&e));
  return e;
}

Context::Scope::Scope(Context& c, Category k, double f, const char* n) : ctx(c), cat(k), flops(f), name(n) {
  if (ctx.profiling) {
    start = ctx.event();
    RL_CUDA(cudaEventRecord(start, ctx.stream));
  }
}

Context::Scope::~Scope() {
  if (!start) return;
  cudaEvent_t end = ctx.event();
  cudaEventRecord(end, ctx.stream);
  ctx.timed_ops_.push_back({cat, start, end, flops, name});
}

CudaProfile Context::profile() {
  RL_CUDA(cudaStreamSynchronize(stream));
  for (auto& p : timed_ops_) {
    float ms = 0;
    RL_CUDA(cudaEventElapsedTime(&ms, p.a, p.b));
    if (p.cat != kDetail)
      (p.cat == kMatmul ? totals.matmul_ms : p.cat == kAttention ? totals.attention_ms : totals.other_ms) += ms;
    if (p.cat == kMatmul) totals.matmul_flops += p.flops;
    if (p.cat == kAttention) totals.attention_flops += p.flops;
    CudaProfile::OpTime& t = totals.by_op[p.name ? p.name : "?"];
    t.ms += ms;
    t.calls += 1;
    event_pool_.push_back(p.a);
    event_pool_.push_back(p.b);
  }
  timed_ops_.clear();
  return totals;
}

}  // namespace raylight::cuda
