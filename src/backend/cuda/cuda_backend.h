// The CUDA backend: the Backend op set with bf16 activations on one GPU (fp32 arithmetic
// inside kernels), matrix products through cuBLASLt, our own flash attention, and a caching
// allocator. This header has no CUDA includes so plain C++ code (the CLI, the loader) can
// create and query it; everything device-specific stays in this folder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "backend/attention_plans.h"
#include "backend/backend.h"
#include "backend/linear_plans.h"

namespace raylight {

// Which kernel runs attention: cuDNN's fused flash attention (backend graph API) or our own
// mma.sync kernel. Default: the RAYLIGHT_ATTENTION environment variable (cudnn|own) if set,
// else cuDNN, the faster one measured (docs/benchmarks.md). Shapes cuDNN has no plan for
// fall back to our kernel (a note on stderr), head sizes neither covers to the CPU. Fp8:
// cuDNN's fp8 flash attention over q, k, v quantised on the device (backend/fp8_attention.h
// says exactly how), bf16 cuDNN where it has no fp8 plan (RAYLIGHT_ATTENTION=fp8 too).
enum class AttentionKernel { Default, Cudnn, Own, Fp8 };
// "cudnn" / "own" / "fp8" -> the kernel; false for any other name.
bool attention_kernel_from_name(const std::string& name, AttentionKernel* out);

struct CudaOptions {
  int device = 0;
  AttentionKernel attention = AttentionKernel::Default;
  // Stored fp8 e4m3 matrices stay fp8 codes on the device (half the memory of bf16);
  // otherwise they are dequantised to bf16 when loaded.
  bool keep_fp8 = true;
  // Products with fp8 weights: true = fp8 tensor-core GEMM with the activation quantised
  // per tensor on the fly; false = weight dequantised to bf16 scratch, then a bf16 GEMM.
  // Measured on H200 (docs/benchmarks.md), Wan 14B: the fp8 GEMM's products take 659 ms
  // against 1,074 ms dequantising (forward 2.42 s vs 2.88 s), so it is the default. (cuBLASLt
  // refuses fp8 products whose scale pointers are not 16-byte aligned: see try_linear.)
  bool fp8_gemm = true;
  // With the fp8 GEMM: an activation that comes without an absmax (not a norm's output) is
  // quantised per row where its rows are at most 8,192 wide (ops_matmul.cpp: kRowScaleMaxK):
  // one pass instead of an absmax pass and a quantisation pass, and a scale per token. Off
  // unless RAYLIGHT_FP8_ROW_SCALES=1: on an H200 a Wan 14B 480p forward's products took 10 ms
  // less with it, but the forward the same (1,722.5 / 1,725.7 against 1,724.3 / 1,726.5 ms;
  // at the power cap the attention after them ran slower by as much). With it on, plans for
  // both forms are made at load (which one a call takes depends on whether its x comes with
  // an absmax, which the product list does not say).
  bool fp8_row_scales = env_is("RAYLIGHT_FP8_ROW_SCALES", "1");
  // Fill every fresh activation buffer with NaN bytes (tests: catches unwritten outputs).
  bool poison = false;
  // fp8 attention hands its e4m3 output to the next product (Fp8Rows) instead of bf16. Off
  // unless RAYLIGHT_FP8_ATTENTION_CODES=1: on an H200 a Wan 14B 480p forward took 19-29 ms
  // less, but its error against bf16 attention rose from 2.25 % to 2.57 % (docs/benchmarks.md,
  // seventh session; likely the folded bias W mean_v + b rounded to bf16 when O ~ mean_v).
  bool fp8_attention_codes = env_flag("RAYLIGHT_FP8_ATTENTION_CODES");
  // fp8 attention runs our own wgmma kernel (cuda/fp8_flash.h: Hopper, head size 128; bf16
  // output with v's mean, no e4m3 output rounding) instead of cuDNN's fp8 graph where it
  // serves the shape. RAYLIGHT_FP8_KERNEL=own|cudnn; default own: on an H200 Wan 14B forwards
  // took 0.3-1 % less than with cuDNN's kernel (docs/benchmarks.md, ninth session) with the
  // smaller error. cuDNN's kernel is the one that writes e4m3 codes (fp8_attention_codes).
  bool fp8_own_kernel = !env_is("RAYLIGHT_FP8_KERNEL", "cudnn");

 private:
  static bool env_flag(const char* name) { return env_is(name, "1"); }
  static bool env_is(const char* name, const char* value) {
    const char* v = std::getenv(name);
    return v && std::string(v) == value;
  }
};

// Time and work per category, gathered while profiling is on (events around each op).
struct CudaProfile {
  double matmul_ms = 0, attention_ms = 0, other_ms = 0;
  double matmul_flops = 0, attention_flops = 0;
  // The same time by op (the name each op's profiling scope gives): what a breakdown's
  // "rest" is made of.
  struct OpTime {
    double ms = 0;
    int64_t calls = 0;
  };
  std::map<std::string, OpTime> by_op;
};

class CudaBackend : public Backend, public AttentionPlans, public LinearPlans {
 public:
  virtual const CudaOptions& options() const = 0;
  virtual void synchronize() = 0;
  // Bytes held by live device tensors: now and the peak since reset_peak(); and what the
  // process holds on the device in all (driver's view, includes cuBLASLt workspace, caches).
  virtual size_t live_bytes() const = 0;
  virtual size_t peak_bytes() const = 0;
  virtual size_t peak_reserved_bytes() const = 0;
  virtual void reset_peak() = 0;
  virtual void set_profiling(bool on) = 0;
  // Waits for the device, then returns the totals since the last reset_profile().
  virtual CudaProfile profile() = 0;
  virtual void reset_profile() = 0;
  // A device weight of N(mean, std^2) values (benchmarks with random weights): bf16, or fp8
  // e4m3 codes whose scale is chosen so values up to 4.5 std are representable.
  virtual Tensor random_weight(const Shape& shape, DType dtype, float mean, float std,
                               uint64_t seed) = 0;
  // Event-timed region on the backend's stream, in milliseconds (median is the caller's).
  virtual double time_ms(const std::function<void()>& fn) = 0;
  virtual std::string device_name() const = 0;
  // The attention kernel in use ("cuDNN 9.14.0 fused attention" / "own mma.sync kernel"),
  // and a switch between them (benchmarks compare both on one backend).
  virtual std::string attention_kernel() const = 0;
  virtual void set_attention_kernel(AttentionKernel k) = 0;
  // Which fp8 attention kernel --attention fp8 runs: ours (true) or cuDNN's (CudaOptions).
  virtual void set_fp8_own_kernel(bool on) = 0;
  // prepare_attention (AttentionPlans): cuDNN's bf16 plan for the shape, and its fp8 plan
  // when fp8 is chosen and the shape would run it.
  // prepare_linears (LinearPlans): cuBLASLt's plans for the products, timed as their first
  // calls would time them (op::prepare_linears).
};

bool cuda_device_available();
std::unique_ptr<CudaBackend> make_cuda_backend(const CudaOptions& options);
std::unique_ptr<Backend> make_cuda_backend(int device);

}  // namespace raylight
