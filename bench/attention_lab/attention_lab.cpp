// The attention kernel lab (as llm.c's dev/cuda): every attention variant of the CUDA
// backend, each checked against the CPU on small shapes and timed at the real ones.
//
//   raylight_attention_lab [--check-only] [--time-only] [--runs N] [--shapes all|self|cross]
//                          [--outlier F] [--shape LqxLkxH]... [--kv-chunk LIST]
//                          [--variants LIST] [--inputs random|outlier|both]
//
// Variants: own (our mma.sync flash kernel, bf16), cudnn (cuDNN fused attention, bf16),
// fp8 (cuDNN's fp8 flash attention after the device quantisation, backend/fp8_attention.h).
// Checks (small shapes, random inputs and inputs with outlier channels): rel L2 against
// exact attention on the CPU for every variant, and for fp8 also against the CPU emulation
// of its arithmetic (the op suite's reference); a check outside its bound fails the run.
// Timing (hd 128, Wan's heads: self-attention at 32,760 and 75,600 tokens, cross-attention
// with 512 keys): median ms over runs, TFLOP/s (4 Lq Lk H D per call, quantisation
// included for fp8), and rel L2 against cuDNN bf16's output at the same shape; for fp8 also
// its two parts alone (the quantisation passes, and cuDNN's fp8 kernel with the output
// conversion), so the cost beyond the kernel is read off directly. Exit 0 when every check
// passed. Losing variants stay listed in README.md beside this file.
//
// fp8 over key chunks (backend/fp8_kv_chunks.h): --kv-chunk takes a comma-separated list of
// settings (off, rule, or keys per chunk; default: RAYLIGHT_FP8_KV_CHUNK, else off) and
// times fp8 once per setting; --shape (repeatable, hd 128) replaces the standard shapes,
// --variants (own,cudnn,fp8) and --inputs keep a sweep short. The checks always run fp8
// also over small chunks (160 keys: two or three chunks, a partly valid last one, one
// ending on a chunk edge) against the emulation of the same chunking.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cudnn_attention.h"
#include "backend/cuda/fp8_flash.h"
#include "backend/cuda/fp8_quantise.h"
#include "backend/fp8_attention.h"
#include "backend/fp8_kv_chunks.h"
#include "backend/fp8_rotation.h"
#include "core/dtype.h"
#include "core/error.h"

using namespace raylight;

namespace {

struct Variant {
  const char* name;
  AttentionKernel kernel;
  bool own_fp8 = false;  // fp8 through our wgmma kernel (cuda/fp8_flash.h) instead of cuDNN's
};
const Variant kVariants[] = {{"own", AttentionKernel::Own},
                             {"cudnn", AttentionKernel::Cudnn},
                             {"fp8", AttentionKernel::Fp8},
                             {"fp8own", AttentionKernel::Fp8, true}};

void select(CudaBackend& be, const Variant& var) {
  be.set_attention_kernel(var.kernel);
  be.set_fp8_own_kernel(var.own_fp8);
}

// Host values of any float tensor as fp32.
std::vector<float> values(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::F32) std::memcpy(out.data(), t.raw(), out.size() * sizeof(float));
  else convert_to_f32(t.dtype(), t.raw(), out.data(), out.size());
  return out;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return 1e9;
    const double d = double(a[i]) - b[i];
    num += d * d;
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

uint64_t g_state = 0x2545f4914f6cdd1dull;
// How much larger the outlier channels of q and k are (--outlier; 16 makes the scores' spread
// about 32 instead of 1, a one-hot softmax; 4 about 2.3).
float g_outlier = 4.0f;
float gauss() {
  auto u = [] {
    g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
    return (static_cast<double>(g_state >> 11) + 0.5) / 9007199254740992.0;
  };
  return static_cast<float>(std::sqrt(-2.0 * std::log(u())) * std::cos(6.283185307179586 * u()));
}

// N(0, 1) rounded to bf16; with outliers, channels 3 and D/2 + 1 of every head g_outlier x larger
// (q and k) and k and v shifted per channel (what smoothing removes).
Tensor host_input(const Shape& s, bool outliers, bool is_k, bool is_v = false) {
  Tensor t = Tensor::empty(s);
  float* p = t.f32();
  const int64_t D = s.back();
  for (int64_t i = 0; i < t.numel(); ++i) {
    float x = gauss();
    const int64_t c = i % D;
    if (outliers && !is_v && (c == 3 || c == D / 2 + 1)) x *= g_outlier;
    if (outliers && (is_k || is_v)) x += 0.25f * float(c % 7) - 0.5f;
    p[i] = bf16_to_f32(f32_to_bf16(x));
  }
  return t;
}

// The variant's attention: fp8 through its op (the fp8 kernel at every shape; the backend's
// --attention fp8 routing keeps few-key calls in bf16) with the key chunk setting, the others
// through attention().
Tensor run(CudaBackend& be, const Variant& var, const Tensor& q, const Tensor& k, const Tensor& v, int64_t valid,
           int64_t kv_chunk = kFp8KvChunkFromEnv) {
  if (var.kernel == AttentionKernel::Fp8) return attention_fp8(be, q, k, v, valid, nullptr, kv_chunk);
  return be.attention(q, k, v, valid, nullptr);
}

// The key chunks the check runs fp8 over as well (small, so the small shapes split).
constexpr int64_t kCheckKvChunk = 160;

// "off", "rule" or "37800 keys (2 chunks)" for a call over Lk keys.
std::string chunk_label(int64_t setting, int64_t Lk) {
  const size_t n = fp8_kv_chunks(Lk, Lk, setting).size();
  return describe_fp8_kv_chunk(setting) + (n ? " (" + std::to_string(n) + " chunks)" : " (whole)");
}

struct Shape4 {
  int64_t Lq, Lk, H, D, valid;
};

int check(CudaBackend& gpu, Backend& cpu) {
  int failures = 0;
  std::printf("== checks against the CPU (rel L2; bounds: bf16 1e-2 vs exact, fp8 5e-2 vs its emulation)\n");
  for (Shape4 s : {Shape4{256, 256, 2, 128, -1}, {200, 77, 3, 64, 70}, {129, 512, 4, 128, 400}, {100, 480, 2, 128, 320}}) {
    for (bool outliers : {false, true}) {
      Tensor q = host_input({s.Lq, s.H, s.D}, outliers, false), k = host_input({s.Lk, s.H, s.D}, outliers, true),
             v = host_input({s.Lk, s.H, s.D}, outliers, false, true);
      const std::vector<float> exact = values(cpu.attention(q, k, v, s.valid, nullptr));
      const std::vector<float> emulated = values(attention_fp8(cpu, q, k, v, s.valid, nullptr, kFp8KvChunkOff));
      const double emu_err = rel_l2(emulated, exact);
      Tensor dq = gpu.upload(q), dk = gpu.upload(k), dv = gpu.upload(v);
      for (const Variant& var : kVariants) {
        select(gpu, var);
        std::vector<float> got;
        try {
          got = values(gpu.download(run(gpu, var, dq, dk, dv, s.valid, kFp8KvChunkOff)));
        } catch (const Error& e) {
          ++failures;
          std::printf("check %-5s q %lld x k %lld, %lld heads x %lld: FAIL (%s)\n", var.name, (long long)s.Lq,
                      (long long)s.Lk, (long long)s.H, (long long)s.D, e.what());
          continue;
        }
        const double e = rel_l2(got, exact);
        bool ok = e < 1e-2;
        char extra[160] = "";
        if (var.kernel == AttentionKernel::Fp8) {
          // (fp8own writes bf16 where the emulation rounds the output to e4m3: a few % apart.)
          const double ee = rel_l2(got, emulated);
          ok = ee < 5e-2;
          std::snprintf(extra, sizeof extra, ", vs emulation %.2e (emulation vs exact %.2e)", ee, emu_err);
        }
        failures += !ok;
        std::printf("check %-5s q %lld x k %lld (valid %lld), %lld heads x %lld, %s: vs exact %.2e%s  %s\n", var.name,
                    (long long)s.Lq, (long long)s.Lk, (long long)s.valid, (long long)s.H, (long long)s.D,
                    outliers ? "outlier channels" : "random", e, extra, ok ? "ok" : "FAIL");
      }
      // fp8 over key chunks (with the lse, which the merge computes) against the emulation of
      // the same chunks.
      if (s.Lk > kCheckKvChunk) {
        select(gpu, kVariants[2]);
        Tensor emu_lse, got_lse;
        const std::vector<float> emu = values(attention_fp8(cpu, q, k, v, s.valid, &emu_lse, kCheckKvChunk));
        std::vector<float> got, got_l;
        try {
          got = values(gpu.download(attention_fp8(gpu, dq, dk, dv, s.valid, &got_lse, kCheckKvChunk)));
          got_l = values(gpu.download(got_lse));
        } catch (const Error& e) {
          ++failures;
          std::printf("check fp8 chunked q %lld x k %lld: FAIL (%s)\n", (long long)s.Lq, (long long)s.Lk, e.what());
          continue;
        }
        const double ee = rel_l2(got, emu), el = rel_l2(got_l, values(emu_lse)), ex = rel_l2(got, exact);
        // Against the emulation of one whole call too: chunks round differently (a few %), so
        // this should be clearly larger than the first when the chunks really ran.
        const double ew = rel_l2(got, emulated);
        const bool ok = ee < 5e-2 && el < 1e-2;
        failures += !ok;
        std::printf("check fp8 chunked q %lld x k %lld (valid %lld), %lld heads x %lld, %s, kv-chunk %s: vs emulation "
                    "%.2e, lse %.2e (vs the whole call's emulation %.2e, vs exact %.2e)  %s\n",
                    (long long)s.Lq, (long long)s.Lk, (long long)s.valid, (long long)s.H, (long long)s.D,
                    outliers ? "outlier channels" : "random", chunk_label(kCheckKvChunk, s.Lk).c_str(), ee, el, ew, ex,
                    ok ? "ok" : "FAIL");
      }
    }
  }
  return failures;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Device inputs at a real shape: N(0, 1); with outliers the same channels as host_input
// made larger (and k shifted) by modulate.
Tensor device_input(CudaBackend& be, const Shape& s, uint64_t seed, bool outliers, bool is_k, bool is_v = false) {
  Tensor x = be.random_weight(s, DType::BF16, 0, 1, seed);
  if (!outliers) return x;
  const int64_t D = s.back();
  Tensor scale = Tensor::zeros({D}), shift = Tensor::zeros({D});
  for (int64_t c = 0; c < D; ++c) {
    if (!is_v && (c == 3 || c == D / 2 + 1)) scale.f32()[c] = g_outlier - 1.0f;
    if (is_k || is_v) shift.f32()[c] = 0.25f * float(c % 7) - 0.5f;
  }
  return be.modulate(x, be.upload(shift), be.upload(scale));
}

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("attention lab: ", what, ": ", cudaGetErrorString(e));
}

// The fp8 call's parts on a stream of the lab's own, with the backend's functions: the
// quantisation (statistics, fold, quantise: fp8_quantise.h) and cuDNN's fp8 graph with the
// output conversion (CudnnAttention::run_fp8; over key chunks: the graphs and the merge).
// Median ms of each over runs.
void time_fp8_parts(CudaBackend& be, const Tensor& q, const Tensor& k, const Tensor& v, int runs, int64_t kv_chunk,
                    bool own_fp8) {
  using namespace raylight::cuda;
  const int64_t Lq = q.dim(0), Lk = k.dim(0), H = q.dim(1), D = q.dim(2), C = H * D;
  be.synchronize();
  cudaStream_t s = nullptr;
  check_cuda(cudaStreamCreate(&s), "stream");
  const int64_t work_floats = fp8_quantise_workspace_floats(3, C, std::max(Lq, Lk));
  void *q8 = nullptr, *k8 = nullptr, *v8 = nullptr, *o = nullptr;
  float *scales = nullptr, *amax = nullptr, *sums = nullptr, *work = nullptr;
  check_cuda(cudaMalloc(&q8, size_t(Lq * C)), "alloc");
  check_cuda(cudaMalloc(&k8, size_t(Lk * C)), "alloc");
  check_cuda(cudaMalloc(&v8, size_t(Lk * C)), "alloc");
  check_cuda(cudaMalloc(&o, size_t(Lq * C) * 2), "alloc");
  check_cuda(cudaMalloc(&scales, 16 * sizeof(float)), "alloc");
  check_cuda(cudaMalloc(&amax, 4 * sizeof(float)), "alloc");
  check_cuda(cudaMalloc(&sums, size_t(3 * C) * sizeof(float)), "alloc");
  check_cuda(cudaMalloc(&work, size_t(work_floats) * sizeof(float)), "alloc");
  const bool rotate = fp8_rotates(D);
  auto* sc = scales;
  Fp8Operand ops[3];
  ops[0] = {static_cast<const bf16*>(q.raw()), Lq, Lq, false, rotate, static_cast<uint8_t*>(q8), sums, sc, nullptr};
  ops[1] = {static_cast<const bf16*>(k.raw()), Lk, Lk, true, rotate, static_cast<uint8_t*>(k8), sums + C, sc + 4, nullptr};
  ops[2] = {static_cast<const bf16*>(v.raw()), Lk, Lk, true, false, static_cast<uint8_t*>(v8), sums + 2 * C, sc + 8,
            sc + 12};
  auto cudnn = std::make_unique<CudnnAttention>(s);  // gone before the stream is
  auto quantise = [&] { quantise_fp8_operands(ops, 3, C, D, amax, work, s); };
  void* vt = nullptr;
  if (own_fp8) check_cuda(cudaMalloc(&vt, size_t(fp8_flash_keys(Lk) * C)), "alloc");
  auto transpose = [&] { fp8_flash_transpose_v(static_cast<uint8_t*>(v8), Lk, C, static_cast<uint8_t*>(vt), s); };
  // As the engine runs it for our kernel: V's statistics and scale only, then V quantised
  // straight into V^T (no codes in between).
  Fp8Operand own_ops[3] = {ops[0], ops[1], ops[2]};
  own_ops[2].y = nullptr;
  auto quantise_qk = [&] { quantise_fp8_operands(own_ops, 3, C, D, amax, work, s); };
  auto quantise_vt = [&] {
    fp8_flash_quantise_v(static_cast<const bf16*>(v.raw()), Lk, C, sums + 2 * C, Lk, sc + 12,
                         static_cast<uint8_t*>(vt), s);
  };
  auto flash = [&](Fp8FlashExp exp, bool pingpong, int tile_keys, int cluster, bool q_regs = false,
                   bool deferred = false) {
    Fp8FlashCall call;
    call.q_regs = q_regs;
    call.deferred_wait = deferred;
    call.exp = exp;
    call.pingpong = pingpong;
    call.tile_keys = tile_keys;
    call.cluster = cluster;
    call.q8 = static_cast<uint8_t*>(q8);
    call.k8 = static_cast<uint8_t*>(k8);
    call.vt = static_cast<uint8_t*>(vt);
    call.descale_q = sc;
    call.descale_k = sc + 4;
    call.descale_v = sc + 8;
    call.v_sum = sums + 2 * C;
    call.inv_valid = 1.0f / float(Lk);
    call.o = static_cast<bf16*>(o);
    call.Lq = Lq;
    call.Lk = Lk;
    call.H = H;
    call.valid = Lk;
    fp8_flash_attention(call, s);
  };
  auto kernel = [&] {
    if (!cudnn->run_fp8(static_cast<uint8_t*>(q8), static_cast<uint8_t*>(k8), static_cast<uint8_t*>(v8), sc, sums + 2 * C,
                       static_cast<bf16*>(o), nullptr, Lq, Lk, H, D, Lk, kv_chunk))
      fail("no fp8 plan");
  };
  cudaEvent_t a = nullptr, b = nullptr;
  check_cuda(cudaEventCreate(&a), "event");
  check_cuda(cudaEventCreate(&b), "event");
  auto time = [&](const std::function<void()>& fn) {
    std::vector<double> t;
    for (int i = 0; i < runs; ++i) {
      check_cuda(cudaEventRecord(a, s), "record");
      fn();
      check_cuda(cudaEventRecord(b, s), "record");
      check_cuda(cudaEventSynchronize(b), "sync");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, a, b), "elapsed");
      t.push_back(ms);
    }
    return median(t);
  };
  try {
    quantise();
    if (own_fp8) {
      transpose();
      // The f16-exp2 output against the fp32 one (same arithmetic but P's exp2).
      auto host_o = [&] {
        std::vector<uint16_t> raw(static_cast<size_t>(Lq * C));
        check_cuda(cudaStreamSynchronize(s), "sync");
        check_cuda(cudaMemcpy(raw.data(), o, raw.size() * 2, cudaMemcpyDeviceToHost), "copy");
        std::vector<float> out(raw.size());
        convert_to_f32(DType::BF16, raw.data(), out.data(), out.size());
        return out;
      };
      flash(Fp8FlashExp::F32, false, 128, 1);
      const std::vector<float> o32 = host_o();
      // Q in registers (fp32 exp2): the same arithmetic as Q in shared memory, so the same bits.
      for (int keys : {128, 192})
        for (int cluster : {1, 2})
          for (bool pingpong : {false, true}) {
            flash(Fp8FlashExp::F32, pingpong, keys, cluster);
            const std::vector<float> shared = host_o();
            flash(Fp8FlashExp::F32, pingpong, keys, cluster, true);
            const double e = rel_l2(host_o(), shared);
            std::printf("check fp8own Q in registers, %d-key tiles, cluster %d, ping-pong %s: rel L2 vs Q in shared "
                        "memory %.2e %s\n",
                        keys, cluster, pingpong ? "on " : "off", e, e == 0.0 ? "ok" : "FAIL");
          }
      // The deferred wait: the classic order's arithmetic in the same order, so the same bits.
      for (int keys : {128, 192})
        for (bool pingpong : {false, true}) {
          flash(Fp8FlashExp::F32, pingpong, keys, 1);
          const std::vector<float> classic = host_o();
          flash(Fp8FlashExp::F32, pingpong, keys, 1, false, true);
          const double e = rel_l2(host_o(), classic);
          std::printf("check fp8own deferred wait, %d-key tiles, ping-pong %s: rel L2 vs the classic order %.2e %s\n",
                      keys, pingpong ? "on " : "off", e, e == 0.0 ? "ok" : "FAIL");
        }
      const double tq = time(quantise), tt = time(transpose), flops = 4.0 * Lq * Lk * H * D;
      const double tqk = time(quantise_qk), tvt = time(quantise_vt);
      std::printf("time fp8own parts q %6lld x k %6lld, %2lld heads: quantisation %.3f ms, V^T %.3f ms; as the engine "
                  "runs them: q and k (V's scale) %.3f ms, V into V^T %.3f ms\n",
                  (long long)Lq, (long long)Lk, (long long)H, tq, tt, tqk, tvt);
      std::printf("time fp8own resident blocks: %d (128-key tiles), %d (192) alone; %d, %d in clusters of 2\n",
                  fp8_flash_resident_blocks(128, 1), fp8_flash_resident_blocks(192, 1), fp8_flash_resident_blocks(128, 2),
                  fp8_flash_resident_blocks(192, 2));
      // Tiles of 128 and 192 keys, and clusters of 1 and 2 blocks, alternate per setting, so a
      // drifting clock hits them alike. Clusters only with fp32 exp2 and codes (the other forms lost).
      for (Fp8FlashExp exp : kFp8FlashExps)
        for (bool pingpong : {false, true})
          for (int keys : {128, 192})
            for (int cluster : {1, 2}) {
              if (cluster > 1 && exp != Fp8FlashExp::F32 && !fp8_flash_exp_sums_on_tensor_cores(exp)) continue;
              flash(exp, pingpong, keys, cluster);
              const double e = rel_l2(host_o(), o32);
              const double tf = time([&] { flash(exp, pingpong, keys, cluster); });
              std::printf("time fp8own kernel, %d-key tiles, exp2 %-4s, ping-pong %s, cluster %d: %.3f ms, %.0f "
                          "TFLOP/s (rel L2 vs 128-key f32 exp2 %.2e)\n",
                          keys, fp8_flash_exp_name(exp), pingpong ? "on " : "off", cluster, tf, flops / tf / 1e9, e);
              if (cluster == 1 && exp == Fp8FlashExp::F32) {  // the deferred wait, right after
                const double td = time([&] { flash(exp, pingpong, keys, cluster, false, true); });
                std::printf("time fp8own kernel, %d-key tiles, exp2 f32 , ping-pong %s, deferred wait: %.3f ms, %.0f "
                            "TFLOP/s\n",
                            keys, pingpong ? "on " : "off", td, flops / td / 1e9);
              }
              if (exp == Fp8FlashExp::F32) {  // Q in registers, right after
                const double tr = time([&] { flash(exp, pingpong, keys, cluster, true); });
                std::printf("time fp8own kernel, %d-key tiles, exp2 f32 , ping-pong %s, cluster %d, Q in registers: "
                            "%.3f ms, %.0f TFLOP/s\n",
                            keys, pingpong ? "on " : "off", cluster, tr, flops / tr / 1e9);
              }
            }
    } else {
      kernel();  // plans built here
      const double tq = time(quantise), tk = time(kernel);
      std::printf("time fp8 parts q %6lld x k %6lld, %2lld heads, kv-chunk %s: quantisation %.3f ms, cuDNN fp8 + "
                  "output conversion %.3f ms (%.0f TFLOP/s)\n",
                  (long long)Lq, (long long)Lk, (long long)H, chunk_label(kv_chunk, Lk).c_str(), tq, tk,
                  4.0 * Lq * Lk * H * D / tk / 1e9);
    }
  } catch (const Error& e) {
    std::printf("time fp8 parts: not run (%s)\n", e.what());
  }
  check_cuda(cudaStreamSynchronize(s), "sync");
  cudnn.reset();
  for (void* p : {q8, k8, v8, vt, o, static_cast<void*>(scales), static_cast<void*>(amax), static_cast<void*>(sums),
                  static_cast<void*>(work)})
    cudaFree(p);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  cudaStreamDestroy(s);
}

struct TimeCase {
  std::string what;
  int64_t Lq, Lk, H;
};

// What to time: the standard shapes (--shapes) or the --shape ones, which variants, which
// inputs, and the fp8 key chunk settings (fp8 is timed once per setting).
struct TimePlan {
  std::vector<TimeCase> cases;
  std::vector<std::string> variants{"own", "cudnn", "fp8", "fp8own"};
  bool random = true, outliers = true;
  std::vector<int64_t> kv_chunks{kFp8KvChunkFromEnv};
  bool wants(const char* variant) const {
    return std::find(variants.begin(), variants.end(), variant) != variants.end();
  }
};

std::vector<TimeCase> standard_cases(const std::string& which) {
  std::vector<TimeCase> cases;
  if (which != "cross") {
    cases.push_back({"self, Wan 1.3B 480x832x81", 32760, 32760, 12});
    cases.push_back({"self, Wan 14B 480x832x81", 32760, 32760, 40});
    cases.push_back({"self, Wan 14B 720x1280x81", 75600, 75600, 40});
  }
  if (which != "self") {
    cases.push_back({"cross, Wan 14B 480x832x81", 32760, 512, 40});
    cases.push_back({"cross, Wan 14B 720x1280x81", 75600, 512, 40});
  }
  return cases;
}

void time_shapes(CudaBackend& be, int runs, const TimePlan& plan) {
  std::printf("== timing (median of %d, TFLOP/s = 4 Lq Lk H D / time; rel L2 vs cuDNN bf16 at the same shape)\n", runs);
  const int64_t D = 128;
  for (const TimeCase& c : plan.cases) {
    for (bool outliers : {false, true}) {
      if (!(outliers ? plan.outliers : plan.random)) continue;
      Tensor q = device_input(be, {c.Lq, c.H, D}, 11, outliers, false);
      Tensor k = device_input(be, {c.Lk, c.H, D}, 12, outliers, true);
      Tensor v = device_input(be, {c.Lk, c.H, D}, 13, outliers, false, true);
      std::vector<float> reference;
      for (const Variant& var : {kVariants[1], kVariants[0], kVariants[2], kVariants[3]}) {  // cuDNN bf16 first: the reference
        if (!plan.wants(var.name)) continue;
        const bool fp8 = var.kernel == AttentionKernel::Fp8;
        for (int64_t kv_chunk : fp8 && !var.own_fp8 ? plan.kv_chunks : std::vector<int64_t>{kFp8KvChunkOff}) {
          select(be, var);
          Tensor o;
          try {
            o = run(be, var, q, k, v, -1, kv_chunk);  // warm-up: plans built here
          } catch (const Error& e) {
            std::printf("time %-5s %-28s: not run (%s)\n", var.name, c.what.c_str(), e.what());
            continue;
          }
          const std::vector<float> got = values(be.download(o));
          o = Tensor();
          if (reference.empty() && var.kernel == AttentionKernel::Cudnn) reference = got;
          std::vector<double> t;
          for (int i = 0; i < runs; ++i) t.push_back(be.time_ms([&] { run(be, var, q, k, v, -1, kv_chunk); }));
          const double ms = median(t), flops = 4.0 * c.Lq * c.Lk * c.H * D;
          char l2[32] = "-";
          if (!reference.empty()) std::snprintf(l2, sizeof l2, "%.2e", rel_l2(got, reference));
          const std::string chunks = fp8 ? ", kv-chunk " + chunk_label(kv_chunk, c.Lk) : "";
          std::printf("time %-5s %-28s q %6lld x k %6lld, %2lld heads x %lld, %-7s%s: %8.3f ms %7.1f TFLOP/s  rel L2 %s\n",
                      var.name, c.what.c_str(), (long long)c.Lq, (long long)c.Lk, (long long)c.H, (long long)D,
                      outliers ? "outlier" : "random", chunks.c_str(), ms, flops / ms / 1e9, l2);
          std::fflush(stdout);
          if (fp8 && c.Lk >= 2048 && (!outliers || !plan.random)) time_fp8_parts(be, q, k, v, runs, kv_chunk, var.own_fp8);
        }
      }
    }
  }
}

// "75600x75600x40" -> a case (hd 128).
TimeCase parse_shape(const std::string& text) {
  long long Lq = 0, Lk = 0, H = 0;
  char tail = 0;
  if (std::sscanf(text.c_str(), "%lldx%lldx%lld%c", &Lq, &Lk, &H, &tail) != 3 || Lq < 1 || Lk < 1 || H < 1 ||
      Lq > (1 << 20) || Lk > (1 << 20) || H > 256)
    fail("--shape must be LqxLkxH (positive; hd 128), got '", text, "'");
  return {"--shape " + text, Lq, Lk, H};
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (true) {
    const size_t end = text.find(',', begin);
    out.push_back(text.substr(begin, end == std::string::npos ? std::string::npos : end - begin));
    if (end == std::string::npos) return out;
    begin = end + 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bool check_only = false, time_only = false;
    int runs = 5;
    std::string shapes = "all", inputs = "both";
    TimePlan plan;
    std::vector<TimeCase> own_shapes;
    const char* usage = "usage: raylight_attention_lab [--check-only] [--time-only] [--runs N] [--shapes all|self|cross] "
                        "[--outlier F] [--shape LqxLkxH]... [--kv-chunk off|rule|N[,...]] [--variants own,cudnn,fp8] "
                        "[--inputs random|outlier|both]";
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--check-only") check_only = true;
      else if (a == "--time-only") time_only = true;
      else if (a == "--runs" && i + 1 < argc) runs = std::max(1, std::atoi(argv[++i]));
      else if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
      else if (a == "--outlier" && i + 1 < argc) g_outlier = std::strtof(argv[++i], nullptr);
      else if (a == "--shape" && i + 1 < argc) own_shapes.push_back(parse_shape(argv[++i]));
      else if (a == "--kv-chunk" && i + 1 < argc) {
        plan.kv_chunks.clear();
        for (const std::string& t : split_commas(argv[++i]))
          plan.kv_chunks.push_back(t == "rule" ? kFp8KvChunkRule : parse_fp8_kv_chunk(t, "--kv-chunk"));
      } else if (a == "--variants" && i + 1 < argc) {
        plan.variants = split_commas(argv[++i]);
        for (const std::string& v : plan.variants)
          if (v != "own" && v != "cudnn" && v != "fp8" && v != "fp8own")
            fail("--variants takes own, cudnn, fp8 and fp8own, got '", v, "'");
      } else if (a == "--inputs" && i + 1 < argc) inputs = argv[++i];
      else fail(usage);
    }
    if (shapes != "all" && shapes != "self" && shapes != "cross") fail("--shapes must be all, self or cross");
    if (inputs != "both" && inputs != "random" && inputs != "outlier") fail("--inputs must be random, outlier or both");
    if (!(g_outlier >= 1.0f && g_outlier <= 64.0f)) fail("--outlier must be a factor in [1, 64]");
    plan.cases = own_shapes.empty() ? standard_cases(shapes) : own_shapes;
    plan.random = inputs != "outlier";
    plan.outliers = inputs != "random";
    std::printf("outlier channels: %gx in q and k\n", g_outlier);
    if (!cuda_device_available()) fail("no CUDA device: the lab runs on a GPU machine");
    CudaOptions o;
    o.attention = AttentionKernel::Cudnn;
    auto gpu = make_cuda_backend(o);
    auto cpu = make_cpu_backend();
    std::printf("device: %s\n", gpu->device_name().c_str());
    gpu->set_attention_kernel(AttentionKernel::Fp8);
    std::printf("kernels: own | %s\n", gpu->attention_kernel().c_str());
    int failures = 0;
    if (!time_only) failures = check(*gpu, *cpu);
    if (!check_only) time_shapes(*gpu, runs, plan);
    std::printf("checks: %s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "raylight_attention_lab: %s\n", e.what());
    return 2;
  }
}
