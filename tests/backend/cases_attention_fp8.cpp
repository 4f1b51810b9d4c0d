// Suite cases for fp8 attention (backend/fp8_attention.h): the CUDA path (cuDNN's fp8 flash
// attention after the device quantisation) against the CPU emulation of the same
// arithmetic, on random inputs and on inputs with outlier channels (a few q/k channels 16x
// larger, offsets shared by all keys on k's and v's channels that smoothing removes), with and without
// padding keys and lse (on both the lse of the true scores: smoothing's shift added back).
// Tolerance 5e-2: the emulation rounds exp(s - max) against the row's final maximum, a flash
// kernel against a running one, block by block, so single P codes may
// differ by one e4m3 step, and the output's own e4m3 rounding (12.5 % per step) turns such
// small differences into whole steps for a few elements. A wrong scale or layout is ~100 %.
// (cuDNN 9.14 on an H200 has no fp8 engine for 1 query x 16 keys: the op refuses such shapes.)
// Key chunks (backend/fp8_kv_chunks.h) at small chunk lengths, passed to the op (no global
// setting): two and three chunks, a last chunk partly valid with one beyond the valid keys
// skipped, valid keys ending on a chunk edge, with and without lse; the emulation rounds
// each chunk's output to e4m3 and merges them as the CUDA path does.
// The quantisation alone is held to the host bit for bit in tests/cuda/test_cuda_fp8_quantise.cpp.
#include <cmath>

#include "backend/fp8_attention.h"
#include "core/dtype.h"
#include "op_suite.h"

namespace raylight::suite {
namespace {

constexpr double kFp8 = 5e-2;

struct Attn {
  int64_t Lq, Lk, H, D, valid;
  bool outliers;
  int64_t kv_chunk = kFp8KvChunkOff;  // keys per chunk (off: one call)
  const char* what = "";
};

// Channels 3 and D/2 + 1 of every head 16x larger in q and k; k and v also get an offset per
// channel (what smoothing takes out). Values stay bf16 (both backends see the same inputs).
void add_outliers(Tensor& q, Tensor& k, Tensor& v, int64_t D) {
  for (Tensor* t : {&q, &k, &v}) {
    float* p = t->f32();
    for (int64_t i = 0; i < t->numel(); ++i) {
      const int64_t c = i % D;
      if (t != &v && (c == 3 || c == D / 2 + 1)) p[i] *= 16.0f;
      if (t != &q) p[i] = bf16_to_f32(f32_to_bf16(p[i] + 0.25f * float(c % 7) - 0.5f));
    }
  }
}

}  // namespace

std::vector<OpCase> attention_fp8_cases() {
  std::vector<OpCase> cs;
  const Attn cases[] = {{64, 64, 2, 128, -1, false},
                        {37, 100, 3, 64, 77, false},
                        {200, 512, 2, 128, -1, true},
                        {129, 300, 4, 128, 257, true},
                        {17, 80, 1, 64, -1, false},
                        // C = 640 (no multiple of the quantisation's 1,024-column warps), head size 256
                        {203, 333, 5, 128, 301, true},
                        {33, 70, 2, 256, 61, true},
                        {64, 256, 2, 128, -1, false, 128, "2 chunks"},
                        {100, 320, 2, 128, -1, true, 128, "3 chunks, the last shorter"},
                        {129, 384, 4, 128, 200, false, 128, "last chunk partly valid, one beyond the valid keys"},
                        {80, 384, 2, 64, 256, true, 128, "valid keys ending on a chunk edge"},
                        {37, 400, 3, 128, 390, false, 100, "4 chunks, the last partly valid"}};
  for (const Attn& a : cases) {
    auto in = [a](Inputs& r) {
      Tensors t{r.randn({a.Lq, a.H, a.D}), r.randn({a.Lk, a.H, a.D}), r.randn({a.Lk, a.H, a.D})};
      if (a.outliers) add_outliers(t[0], t[1], t[2], a.D);
      return t;
    };
    std::string name = fmt("Lq=%lld Lk=%lld H=%lld D=%lld valid=%lld%s", (long long)a.Lq, (long long)a.Lk,
                           (long long)a.H, (long long)a.D, (long long)a.valid, a.outliers ? ", outlier channels" : "");
    if (a.kv_chunk != kFp8KvChunkOff) name += fmt(", key chunks of %lld (%s)", (long long)a.kv_chunk, a.what);
    cs.push_back(make("attention_fp8", name + ", lse", kFp8, in, [a](Backend& be, const Tensors& t) {
      Tensor lse;
      Tensor o = attention_fp8(be, be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), a.valid, &lse, a.kv_chunk);
      return down(be, {o, lse});
    }));
    cs.push_back(make("attention_fp8", name, kFp8, in, [a](Backend& be, const Tensors& t) {
      return down(be, {attention_fp8(be, be.upload(t[0]), be.upload(t[1]), be.upload(t[2]), a.valid, nullptr,
                                     a.kv_chunk)});
    }));
  }
  cs.push_back(refuse("attention_fp8", "a key chunk setting that is no key count, rule or off",
                      [](Inputs& r) { return Tensors{r.randn({4, 2, 64})}; },
                      [](Backend& be, const Tensors& t) {
                        Tensor q = be.upload(t[0]);
                        attention_fp8(be, q, q, q, -1, nullptr, -3);
                      }));
  OpCase groups = make("attention_fp8", "refuses grouped-query heads", 0,
                       [](Inputs& r) { return Tensors{r.randn({4, 4, 64}), r.randn({4, 2, 64})}; },
                       [](Backend& be, const Tensors& t) {
                         attention_fp8(be, be.upload(t[0]), be.upload(t[1]), be.upload(t[1]), -1, nullptr);
                         return Tensors{};
                       });
  groups.refused = true;
  cs.push_back(groups);
  OpCase masked = make("attention_fp8", "refuses a mask that hides every key", 0,
                       [](Inputs& r) { return Tensors{r.randn({4, 2, 64})}; },
                       [](Backend& be, const Tensors& t) {
                         Tensor q = be.upload(t[0]);
                         attention_fp8(be, q, q, q, 0, nullptr);
                         return Tensors{};
                       });
  masked.refused = true;
  cs.push_back(masked);
  return cs;
}

}  // namespace raylight::suite
