// raylight bench: one DiT forward at real shapes with random weights made on the GPU (no
// checkpoint needed; the registry lists the models and their tensors), timed with CUDA
// events: median over several runs after warm-up, FLOPs and TFLOP/s, a profiled breakdown
// (matrix products, attention, the rest), peak device memory, and the attention kernel
// alone. Built only with the CUDA backend.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <vector>

#include "commands.h"
#include "core/dtype.h"
#include "core/error.h"
#include "options.h"
#include "parallel_options.h"
#include "dist/runtime.h"

#include "models/registry.h"
#ifdef RAYLIGHT_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "parallel/lora/side_lora_weights.h"
#include "pipeline/model_loader.h"
#include "pipeline/job_plans.h"
#include "sampling/noise.h"
#endif

namespace raylight::cli {

static std::string bench_model_names() {
  std::string names;
  for (const auto& m : bench_models()) names += (names.empty() ? "" : "|") + m.name;
  return names;
}

static constexpr const char* kHelp =
    "usage: raylight bench [options]\n"
    "  --model NAME               a model's real shapes with random weights (first listed below)\n"
    "  --dtype bf16|fp8           block matrices in bf16, or fp8 e4m3 with a scale (bf16)\n"
    "  --fp8-gemm native|dequant  fp8 products: fp8 tensor cores, or dequantise to bf16 (native)\n"
    "  --attention cudnn|own|fp8  attention kernel (default: RAYLIGHT_ATTENTION, else cudnn)\n"
    "  --frames F --height H --width W   size (the model's default, e.g. 81, 480, 832)\n"
    "  --runs N --warmup N        timed forwards and warm-up forwards (5, 2)\n"
    "  --plans prepare|first-use  product and attention plans made before the first forward\n"
    "                             (timed and printed) as a sampling job makes them, or by it (prepare)\n"
    "  --attention-only           time the attention kernels alone (ours, cuDNN, cuDNN fp8; self and cross)\n"
    "  --lora-rank R              a random rank-R LoRA as side products on every block matrix (0)\n"
    "  --qk-outliers F            Wan's q/k norm weights: channels 3 and D/2+1 of each head x F (1)\n"
    "  --fp8-accuracy full|bf16|off  with --attention fp8: the forward's rel L2 against cuDNN bf16\n"
    "                             attention and our bf16 kernel's as the floor (full), without the\n"
    "                             floor (bf16: our kernel is slow at 720p), or neither (default full)\n"
    "  with --gpus LIST and --ulysses/--ring, the forward runs sequence-parallel over the GPUs\n";

#ifdef RAYLIGHT_HAVE_CUDA
namespace {

// Random weights at a model's exact names and shapes, made on the device on first use.
class RandomDeviceWeights final : public WeightStore {
 public:
  RandomDeviceWeights(const BenchModel& m, CudaBackend& be, bool fp8)
      : be_(be), fp8_(fp8), metadata_(m.metadata), is_block_matrix_(m.is_block_matrix) {
    for (auto& [name, shape] : m.tensors) shapes_[name] = shape;
  }
  bool has(const std::string& n) const override { return shapes_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return shapes_.at(n); }
  DType stored_dtype(const std::string& n) const override { return quantised(n) ? DType::F8E4M3 : DType::BF16; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (auto& [n, s] : shapes_) out.push_back(n);
    return out;
  }
  std::map<std::string, std::string> metadata() const override { return metadata_; }
  Tensor get(const std::string& n) override {
    auto it = made_.find(n);
    if (it != made_.end()) return it->second;
    const Shape& s = shapes_.at(n);
    const bool matrix = s.size() >= 2 && n.find(".weight") != std::string::npos;
    const bool norm = !matrix && n.find("norm") != std::string::npos;
    const float sd = matrix ? 1.0f / std::sqrt(float(shape_numel(s) / s[0])) : 0.1f;
    Tensor w = be_.random_weight(s, quantised(n) ? DType::F8E4M3 : DType::BF16, norm ? 1.0f : 0.0f, sd,
                                 std::hash<std::string>{}(n));
    if (outlier_ != 1.0f && s.size() == 1 && (n.find("norm_q.weight") != std::string::npos ||
                                             n.find("norm_k.weight") != std::string::npos))
      w = with_outlier_channels(w);
    made_.emplace(n, w);
    return w;
  }
  // --qk-outliers: channels 3 and D/2 + 1 of every head of the q/k RMSNorm weights (Wan's
  // norm_q, norm_k) times `factor`, so q and k carry outlier channels as trained models'
  // do (the demo DiT's largest channel: 3.6-8x the mean; random weights have none).
  void set_qk_outliers(float factor, int64_t head_dim) {
    outlier_ = factor;
    head_dim_ = head_dim;
  }

 protected:
  Stored stored(const std::string& n) const override { fail("random weights have no stored bytes (", n, ")"); }

 private:
  bool quantised(const std::string& n) const { return fp8_ && is_block_matrix_(n) && shapes_.at(n).size() == 2; }
  Tensor with_outlier_channels(const Tensor& w) {
    const Tensor host = be_.download(w).to_f32();
    Tensor out = Tensor::empty(host.shape(), DType::BF16);
    for (int64_t i = 0; i < host.numel(); ++i) {
      const int64_t c = head_dim_ > 0 ? i % head_dim_ : -1;
      const float f = (c == 3 || c == head_dim_ / 2 + 1) ? outlier_ : 1.0f;
      static_cast<uint16_t*>(out.raw())[i] = f32_to_bf16(host.f32()[i] * f);
    }
    return be_.upload(out);
  }
  float outlier_ = 1.0f;
  int64_t head_dim_ = 0;
  CudaBackend& be_;
  bool fp8_;
  std::map<std::string, std::string> metadata_;
  std::function<bool(const std::string&)> is_block_matrix_;
  std::map<std::string, Shape> shapes_;
  std::map<std::string, Tensor> made_;
};

// A random rank-r LoRA on every block matrix, as side products (what an fp8 model runs):
// the per-step cost of a LoRA without a file. Factors scaled like a trained LoRA's delta.
size_t add_random_side_lora(LoadedModel& m, const BenchModel& model, int64_t rank) {
  std::map<std::string, SideFactors> side;
  uint64_t state = 0x9e3779b97f4a7c15ull;
  auto fill = [&](Shape s, float sd) {
    Tensor t = Tensor::empty(std::move(s));
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      p[i] = sd * (static_cast<float>(state >> 40) / 16777216.0f - 0.5f);
    }
    return t;
  };
  for (const auto& [name, shape] : model.tensors)
    if (model.is_block_matrix(name) && shape.size() == 2)
      side[name] = {fill({rank, shape[1]}, 0.02f), fill({shape[0], rank}, 0.02f)};
  const size_t n = side.size();
  const DenoiserSpec& spec = *m.spec;
  m.denoiser.reset();
  m.weights = std::make_unique<LoraSideWeights>(std::move(m.weights), std::move(side),
                                                [&spec](const std::string& w) { return spec.block_of(w); },
                                                *m.backend, false);
  m.denoiser = m.spec->make(*m.weights, *m.backend, *m.attention);
  return n;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// ||a - b|| / ||b|| over two host or device tensors of the same shape.
double relative_l2(const Tensor& a_in, const Tensor& b_in) {
  auto host = [](const Tensor& t) { return t.device() == Device::CPU ? t.to_f32() : Tensor(); };
  const Tensor a = host(a_in), b = host(b_in);
  if (!a.defined() || !b.defined() || a.numel() != b.numel()) return -1;
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.f32()[i]) - b.f32()[i];
    num += d * d;
    den += double(b.f32()[i]) * b.f32()[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

void bench_attention(CudaBackend& be, int64_t L, int64_t Lk, int64_t H, int64_t D, int runs, bool with_lse = true) {
  Tensor q = be.random_weight({L, H, D}, DType::BF16, 0, 1, 1);
  Tensor k = be.random_weight({Lk, H, D}, DType::BF16, 0, 1, 2);
  Tensor v = be.random_weight({Lk, H, D}, DType::BF16, 0, 1, 3);
  Tensor lse;
  Tensor* l = with_lse ? &lse : nullptr;
  for (int i = 0; i < 2; ++i) be.attention(q, k, v, -1, l);
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) t.push_back(be.time_ms([&] { be.attention(q, k, v, -1, l); }));
  const double ms = median(t), flops = 4.0 * L * Lk * H * D;
  std::printf("attention [%s]: q %lld x k %lld, %lld heads x %lld: %.3f ms, %.1f TFLOP/s (%s)\n",
              be.attention_kernel().c_str(), (long long)L, (long long)Lk, (long long)H, (long long)D, ms,
              flops / ms / 1e9, with_lse ? "with lse" : "no lse");
}


// The profiled run by op name, longest first: which ops make up the "rest". Names with a dot
// are steps inside the op before the dot (attention.fp8_kernel), already counted in it.
void print_ops_breakdown(const CudaProfile& p) {
  std::vector<std::pair<std::string, CudaProfile::OpTime>> ops(p.by_op.begin(), p.by_op.end());
  std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  std::printf("by op (profiled run, ms/calls):");
  for (const auto& [name, t] : ops)
    if (t.ms >= 0.05) std::printf(" %s %.2f/%lld", name.c_str(), t.ms, (long long)t.calls);
  std::printf("\n");
}

}  // namespace
#endif

int run_bench(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      std::printf("models: %s\n", bench_model_names().c_str());
      return 0;
    }
  std::set<std::string> valued = {"model", "dtype", "fp8-gemm", "attention", "frames", "height", "width", "runs", "warmup",
                                  "lora-rank", "fp8-accuracy", "qk-outliers", "plans"};
  valued.insert(kParallelValued.begin(), kParallelValued.end());
  std::set<std::string> flags = {"attention-only"};
  flags.insert(kParallelFlags.begin(), kParallelFlags.end());
  Options opt(args, valued, flags);
  [[maybe_unused]] const ParallelLayout layout = parse_parallel(opt);
  [[maybe_unused]] const bool lead = Runtime::world_rank() == 0;
  // Checked on every build (a build without CUDA refuses the command after it).
  [[maybe_unused]] const std::string plans = opt.str("plans", "prepare");
  if (plans != "prepare" && plans != "first-use") fail("--plans must be prepare or first-use, got '", plans, "'");
#ifndef RAYLIGHT_HAVE_CUDA
  fail("bench needs the CUDA backend; this build has none (nvcc was not found at configure time)");
#else
  const std::vector<BenchModel> models = bench_models();
  const std::string model = opt.str("model", models.front().name), dtype = opt.str("dtype", "bf16");
  const BenchModel* chosen = nullptr;
  for (const auto& m : models)
    if (m.name == model) chosen = &m;
  if (!chosen) fail("--model must be one of ", bench_model_names(), ", got '", model, "'");
  if (dtype != "bf16" && dtype != "fp8") fail("--dtype must be bf16 or fp8, got '", dtype, "'");
  const std::string gemm = opt.str("fp8-gemm", "native");
  if (gemm != "native" && gemm != "dequant") fail("--fp8-gemm must be native or dequant");
  const int runs = static_cast<int>(opt.integer("runs", 5)), warmup = static_cast<int>(opt.integer("warmup", 2));
  if (runs < 1 || warmup < 0) fail("--runs must be at least 1 and --warmup at least 0");

  const std::string attn = opt.str("attention", "");
  CudaOptions o;
  if (!attn.empty() && !attention_kernel_from_name(attn, &o.attention))
    fail("--attention must be cudnn, own or fp8, got '", attn, "'");
  o.fp8_gemm = gemm == "native";
  const std::string accuracy = opt.str("fp8-accuracy", "full");
  if (accuracy != "full" && accuracy != "bf16" && accuracy != "off")
    fail("--fp8-accuracy must be full, bf16 or off, got '", accuracy, "'");
  const double qk_outliers = opt.number("qk-outliers", 1.0);
  if (!(qk_outliers >= 1.0 && qk_outliers <= 64.0)) fail("--qk-outliers must be a factor in [1, 64], got ", qk_outliers);
  auto owned = make_cuda_backend(o);
  CudaBackend& be = *owned;
  auto weights = std::make_unique<RandomDeviceWeights>(*chosen, be, dtype == "fp8");
  const auto spec = denoiser_spec(*weights, model);
  const SamplingDefaults d = spec->defaults();
  const OutputSize size{opt.integer("width", d.width), opt.integer("height", d.height), opt.integer("frames", d.frames)};
  const Shape item = spec->latent_shape(size);
  const int64_t tokens = spec->sequence_tokens(item);
  const int64_t heads = spec->attention_heads(), head_dim = spec->head_dim();
  weights->set_qk_outliers(static_cast<float>(qk_outliers), head_dim);
  if (lead) std::printf("device: %s\nmodel: %s (%s), %s weights%s; %lldx%lldx%lld -> %lld tokens\n",
              be.device_name().c_str(), model.c_str(), spec->summary().c_str(), dtype.c_str(),
              dtype == "fp8" ? (o.fp8_gemm ? " (fp8 GEMM)" : " (dequant GEMM)") : "",
              (long long)size.height, (long long)size.width, (long long)size.frames, (long long)tokens);
  if (lead) std::printf("attention: %s\n", be.attention_kernel().c_str());
  if (opt.flag("attention-only")) {
    for (AttentionKernel k : {AttentionKernel::Own, AttentionKernel::Cudnn, AttentionKernel::Fp8}) {
      be.set_attention_kernel(k);
      bench_attention(be, tokens, tokens, heads, head_dim, std::max(runs, 10));
      bench_attention(be, tokens, tokens, heads, head_dim, std::max(runs, 10), false);
      if (spec->context_tokens() > 0) bench_attention(be, tokens, spec->context_tokens(), heads, head_dim, std::max(runs, 10));
    }
    return 0;
  }
  // --lora files apply as side products (fp8 block matrices); random weights have no stored
  // bytes to merge into.
  WeightPlacement placement;
  placement.loras = parse_placement(opt).loras;
  LoadedModel loaded = load_model(std::move(weights), std::move(owned), layout, placement, model);
  if (lead) std::printf("layout: %d rank(s), %s\n", Runtime::world_size(), loaded.groups.layout.describe().c_str());
  if (const int64_t rank = opt.integer_in("lora-rank", 0, 0, 4096)) {
    const size_t n = add_random_side_lora(loaded, *chosen, rank);
    if (lead) std::printf("lora: rank %lld side products on %zu block matrices\n", (long long)rank, n);
  }
  // The product and attention plans, made before the first forward as a sampling job makes
  // them (or left to it), so the first forward's time shows what is left of its start-up cost.
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  {
    // The random weights are made on the device now (a checkpoint's are placed at load), so
    // the first forward's time holds no weight making.
    const Clock::time_point t0 = Clock::now();
    for (const std::string& n : loaded.weights->names()) loaded.weights->get(n);
    be.synchronize();
    if (lead) std::printf("weights: made on the device in %.1f ms\n", ms_since(t0));
  }
  if (plans == "prepare") {
    const Clock::time_point t0 = Clock::now();
    const ProductPlans pp = prepare_product_plans(loaded, item);
    be.synchronize();
    if (lead)
      std::printf("product plans: %lld products, %lld plans made in %.1f ms before the first forward%s\n",
                  (long long)pp.products, (long long)pp.plans_made, ms_since(t0),
                  pp.prepared ? "" : " (some have none: their calls fall back)");
    const Clock::time_point t1 = Clock::now();
    const bool attention = prepare_attention_plans(loaded, item);
    be.synchronize();
    if (lead) std::printf("attention plans: made in %.1f ms before the first forward%s\n", ms_since(t1),
                          attention ? "" : " (not all: split layouts and kernels without plans make theirs in it)");
  }
  const int64_t plans_before = linear_plans_made(be);
  const Clock::time_point start = Clock::now();
  Tensor latent = gaussian_noise(item, 1);
  const auto prepared = loaded.denoiser->prepare(spec->example_conditioning(item, 2));
  auto forward = [&] { return loaded.denoiser->predict(latent, 500.0, *prepared); };
  // The first forward (conditioning embedding included), timed on the wall clock: a warm-up,
  // or with --warmup 0 the profiled one.
  bool first = true;
  auto first_forward = [&](Clock::time_point t0) {
    if (!first) return;
    first = false;
    be.synchronize();
    const double first_ms = ms_since(t0);
    if (lead)
      std::printf("first forward: %.1f ms%s, %lld product plans made in it (conditioning embedding included)\n",
                  first_ms, warmup == 0 ? " (profiled)" : "", (long long)(linear_plans_made(be) - plans_before));
  };

  for (int i = 0; i < warmup; ++i) {
    forward();
    first_forward(start);
  }
  be.set_profiling(true);
  be.reset_profile();
  forward();
  first_forward(start);
  const CudaProfile p = be.profile();
  be.set_profiling(false);
  be.reset_peak();
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) times.push_back(be.time_ms([&] { forward(); }));
  const double ms = median(times), flops = p.matmul_flops + p.attention_flops;
  const double prof_total = p.matmul_ms + p.attention_ms + p.other_ms;
  if (!lead) return 0;
  std::printf("forward: median %.1f ms over %d runs (min %.1f, max %.1f) after %d warm-up\n", ms, runs,
              *std::min_element(times.begin(), times.end()), *std::max_element(times.begin(), times.end()), warmup);
  std::printf("work: %.1f TFLOP (products %.1f, attention %.1f) -> %.1f TFLOP/s achieved\n", flops / 1e12,
              p.matmul_flops / 1e12, p.attention_flops / 1e12, flops / ms / 1e9);
  std::printf("breakdown (profiled run, %.1f ms in ops): products %.1f ms (%.0f TFLOP/s), attention %.1f ms (%.0f TFLOP/s), rest %.1f ms\n",
              prof_total, p.matmul_ms, p.matmul_flops / p.matmul_ms / 1e9, p.attention_ms,
              p.attention_flops / p.attention_ms / 1e9, p.other_ms);
  print_ops_breakdown(p);
  std::printf("peak device memory: %.2f GiB in tensors (weights + activations), %.2f GiB reserved by the cache\n",
              be.peak_bytes() / kGiB, be.peak_reserved_bytes() / kGiB);
  bench_attention(be, tokens, tokens, heads, head_dim, 10);
  if (o.attention == AttentionKernel::Fp8 && accuracy != "off") {
    // What fp8 attention costs in accuracy over a whole forward: the same inputs with bf16
    // cuDNN attention, relative L2 of the prediction.
    const Tensor with_fp8 = forward();
    be.set_attention_kernel(AttentionKernel::Cudnn);
    const Tensor with_bf16 = forward();
    // The floor to read it against: two bf16 kernels (ours and cuDNN's) on the same inputs.
    Tensor with_own;
    if (accuracy == "full") {
      be.set_attention_kernel(AttentionKernel::Own);
      with_own = forward();
    }
    be.set_attention_kernel(AttentionKernel::Fp8);
    std::printf("fp8 attention vs bf16 attention: relative L2 %.3e of the forward's prediction", relative_l2(with_fp8, with_bf16));
    if (with_own.defined()) std::printf(" (our bf16 kernel vs cuDNN's: %.3e)", relative_l2(with_own, with_bf16));
    std::printf("\n");
  }
  return 0;
#endif
}

}  // namespace raylight::cli
