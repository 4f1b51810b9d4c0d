// CLIP text and vision towers on CUDA against the CPU reference: the tiny fixtures, then
// random weights at the real widths (CLIP-L 768 / 12 heads, ViT-H 1280 / 16 heads of 80) with
// few layers, then the full CLIP-L (77 tokens) and ViT-H/14 (one 224 x 224 image) timed with
// random weights (printed as "CLIP timing: ...").
#include <chrono>
#include <cstdio>

#include "cuda_test_util.h"
#include "io/safetensors.h"
#include "models/clip/clip_text_model.h"
#include "models/clip/clip_tiny.h"
#include "models/clip/clip_vision_model.h"

using namespace raylight;
using namespace raylight::test;

namespace {

std::string fixture(const std::string& name) { return std::string(RAYLIGHT_FIXTURE_DIR) + "/" + name; }

std::unique_ptr<MemoryWeights> file_weights(const std::string& file) {
  auto f = SafetensorsFile::open(fixture(file));
  auto w = std::make_unique<MemoryWeights>();
  for (const TensorInfo& t : f->tensors()) w->put(t.name, f->tensor(t.name).to_f32().clone());
  w->set_metadata({{"raylight.clip_heads", "4"}});
  return w;
}

std::vector<int> some_ids(int64_t n, int64_t vocab, int eos) {
  std::vector<int> ids{static_cast<int>(vocab) - 2};
  for (int64_t i = 1; i < n; ++i) ids.push_back(i < n / 2 ? static_cast<int>((i * 7919) % (vocab - 2)) : eos);
  return ids;
}

Tensor random_image(int64_t h, int64_t w) {
  Tensor t = gaussian_noise({3, h, w}, next_seed());
  float* p = t.f32();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::tanh(p[i]);
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

struct CudaClip : GpuTest {};

TEST_F(CudaClip, TinyTextMatchesCpu) {
  ClipTextModel cpu(file_weights("clip_text_tiny.safetensors"), cpu_ref());
  ClipTextModel gpu_model(file_weights("clip_text_tiny.safetensors"), *gpu);
  const std::vector<int> ids = some_ids(16, 1024, 1023);
  const ClipTextOutput want = cpu.encode(ids, 1023), got = gpu_model.encode(ids, 1023);
  const double e = rel_err(got.hidden, want.hidden), p = rel_err(got.pooled, want.pooled);
  std::printf("tiny CLIP text: CUDA vs CPU relative L2 hidden %.3g pooled %.3g\n", e, p);
  EXPECT_LT(e, 2e-2);
  EXPECT_LT(p, 2e-2);
}

TEST_F(CudaClip, TinyVisionMatchesCpu) {
  ClipVisionModel cpu(file_weights("clip_vision_tiny.safetensors"), cpu_ref());
  ClipVisionModel gpu_model(file_weights("clip_vision_tiny.safetensors"), *gpu);
  const Tensor image = random_image(20, 24);
  const double e = rel_err(gpu_model.encode_image(image), cpu.encode_image(image));
  std::printf("tiny CLIP vision: CUDA vs CPU relative L2 %.3g\n", e);
  EXPECT_LT(e, 2e-2);
}

TEST_F(CudaClip, RealWidthRandomTowersMatchCpu) {
  ClipConfig t = clip_l_text_config();
  t.layers = 2;
  t.vocab = 2048;
  ClipTextModel cpu_t(clip_random_weights(t), cpu_ref());
  ClipTextModel gpu_t(clip_random_weights(t), *gpu);
  const std::vector<int> ids = some_ids(77, t.vocab, static_cast<int>(t.vocab) - 1);
  const ClipTextOutput want = cpu_t.encode(ids, static_cast<int>(t.vocab) - 1);
  const ClipTextOutput got = gpu_t.encode(ids, static_cast<int>(t.vocab) - 1);
  const double et = rel_err(got.hidden, want.hidden);

  ClipConfig v = clip_vit_h_config();
  v.layers = 3;
  ClipVisionModel cpu_v(clip_random_weights(v), cpu_ref());
  ClipVisionModel gpu_v(clip_random_weights(v), *gpu);
  const Tensor image = random_image(480, 832);
  const Tensor fea = gpu_v.encode_image(image);
  ASSERT_EQ(fea.shape(), (Shape{257, 1280}));
  const double ev = rel_err(fea, cpu_v.encode_image(image));
  std::printf("real-width CLIP: CUDA vs CPU relative L2 text (77 x 768, 2 layers) %.3g, vision (257 x 1280, "
              "penultimate of 3) %.3g\n", et, ev);
  EXPECT_LT(et, 2e-2);
  EXPECT_LT(ev, 2e-2);
}

TEST_F(CudaClip, FullClipLAndVitHTimedWithRandomWeights) {
  const ClipConfig t = clip_l_text_config();
  ClipTextModel text(clip_random_weights(t), *gpu);
  EXPECT_EQ(text.config().variant(), "CLIP-L");
  const std::vector<int> ids = some_ids(77, t.vocab, 49407);
  text.encode(ids, 49407);  // weights converted and uploaded once
  auto t0 = std::chrono::steady_clock::now();
  const int runs = 10;
  ClipTextOutput out;
  for (int i = 0; i < runs; ++i) out = text.encode(ids, 49407);
  const double text_s = seconds_since(t0) / runs;
  for (int64_t i = 0; i < out.pooled.numel(); ++i) ASSERT_TRUE(std::isfinite(out.pooled.f32()[i]));

  ClipVisionModel vision(clip_random_weights(clip_vit_h_config()), *gpu);
  EXPECT_EQ(vision.config().variant(), "CLIP ViT-H/14");
  const Tensor image = random_image(480, 832);
  vision.encode_image(image);
  t0 = std::chrono::steady_clock::now();
  Tensor fea;
  for (int i = 0; i < runs; ++i) fea = vision.encode_image(image);
  const double vision_s = seconds_since(t0) / runs;
  ASSERT_EQ(fea.shape(), (Shape{257, 1280}));
  for (int64_t i = 0; i < fea.numel(); ++i) ASSERT_TRUE(std::isfinite(fea.f32()[i]));
  std::printf("CLIP timing: CLIP-L text 77 tokens %.2f ms, ViT-H/14 one 480x832 image (preprocess included) "
              "%.2f ms, resident bf16 weights, mean of %d\n", text_s * 1e3, vision_s * 1e3, runs);
}
