// LoRAs (src/parallel/lora): the merged weights against an independent float64 reference of
// ComfyUI's formula (tests/fixtures/make_lora_golden.py), the fp8 side product against the
// merged fp32 model, every placement equal, removing a LoRA equal to never applying it, and
// the refusals (unmatched keys, another family, bad files).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include <unistd.h>

#include "backend/backend.h"
#include "cli_runner.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "parallel/lora/merged_lora_weights.h"
#include "pipeline/model_loader.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;

namespace {

LoraOptions loras(std::vector<LoraRequest> files, bool skip = false, bool merge = false) {
  LoraOptions o;
  o.files = std::move(files);
  o.skip_unmatched = skip;
  o.merge_fp8 = merge;
  return o;
}

std::map<std::string, LoraTarget> stems_of(const DenoiserSpec& spec, const WeightStore& w) {
  return lora_key_stems(spec, w);
}

// Every patched weight of `merged` against expected.<prefix><name> of the golden case.
void expect_golden(const WeightStore& merged, const std::string& prefix, float tol) {
  auto c = SafetensorsFile::open(fixture("lora_golden_case.safetensors"));
  int checked = 0;
  for (const auto& info : c->tensors()) {
    if (info.name.rfind(prefix, 0) != 0) continue;
    const std::string name = info.name.substr(prefix.size());
    const WeightStore::Stored s = merged.stored(name);
    Tensor got = s.bytes.to_f32().clone();
    for (int64_t i = 0; i < got.numel(); ++i) got.f32()[i] *= s.scale;
    EXPECT_LT(max_abs_diff(got.reshape(info.shape), c->tensor(info.name).to_f32()), tol) << name;
    ++checked;
  }
  EXPECT_GT(checked, 1) << prefix;
}

// A store's tensors in memory, 2-D ".weight" matrices as fp8 codes (or their fp32 values).
std::unique_ptr<MemoryWeights> as_memory(const WeightStore& w, bool fp8) {
  auto m = std::make_unique<MemoryWeights>();
  for (const auto& name : w.names()) {
    const WeightStore::Stored s = w.stored(name);
    Tensor t = s.bytes.to_f32().clone();
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] *= s.scale;
    const bool matrix = t.ndim() == 2 && name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (matrix) t = t.to_dtype(DType::F8E4M3);
    if (matrix && !fp8) t = t.to_f32();
    m->put(name, t);
  }
  m->set_metadata(w.metadata());
  return m;
}

// One forward of a loaded model on a fixture case's inputs.
Tensor forward(LoadedModel& m, const std::string& case_file) {
  auto c = SafetensorsFile::open(fixture(case_file));
  const Tensor latent = c->tensor("latent").to_f32();
  Conditioning cond;
  for (const char* k : {"context", "pooled", "guidance", "y", "clip_fea"})
    if (c->has(k)) cond[k] = c->tensor(k).to_f32();
  cond = m.spec->check_conditioning(cond, latent.shape());
  auto prepared = m.denoiser->prepare(cond);
  return m.denoiser->predict(latent, c->tensor("timestep").to_f32().f32()[0], *prepared);
}

LoadedModel load_with(const std::string& model, const LoraOptions& l) {
  WeightPlacement p;
  p.loras = l;
  return load_model(fixture(model), {}, BackendChoice::Cpu, p);
}

}  // namespace

TEST(LoraGolden, MergedWanWeightsFollowComfyFormulaForEveryKindAndKeyStyle) {
  DenoiserWeights d = as_denoiser(open_store(fixture("wan_tiny_t2v.safetensors"), PartKind::Denoiser), "wan");
  std::shared_ptr<WeightStore> base(std::move(d.weights));
  const LoraPlan plan = plan_loras(loras({{fixture("lora_wan_mixed.safetensors"), 0.7},
                                          {fixture("lora_wan_second.safetensors"), -0.5}}),
                                   stems_of(*d.spec, *base), *base, d.spec->family());
  EXPECT_EQ(plan.patches.at("blocks.0.self_attn.q.weight").size(), 2u);  // both files, in order
  MergedLoraWeights merged(base, plan, false);
  EXPECT_TRUE(merged.side().empty());  // fp32 weights are merged
  expect_golden(merged, "wan.", 2e-6f);
  // Weights no LoRA names are the base bytes.
  EXPECT_EQ(merged.stored("blocks.1.ffn.0.weight").bytes.raw(), base->stored("blocks.1.ffn.0.weight").bytes.raw());
}

TEST(LoraGolden, MergedFluxWeightsFollowComfyFormula) {
  DenoiserWeights d = as_denoiser(open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux");
  std::shared_ptr<WeightStore> base(std::move(d.weights));
  const LoraPlan plan = plan_loras(loras({{fixture("lora_flux_kohya.safetensors"), 1.0}}), stems_of(*d.spec, *base),
                                   *base, d.spec->family());
  MergedLoraWeights merged(base, plan, false);
  expect_golden(merged, "flux.", 2e-6f);
}

TEST(LoraGolden, Fp8WeightsKeepTheirCodesAndMergeIntoBf16OnRequest) {
  DenoiserWeights d =
      as_denoiser(open_store(fixture("wan_tiny_t2v_scaled_fp8.safetensors"), PartKind::Denoiser), "fp8");
  std::shared_ptr<WeightStore> base(std::move(d.weights));
  const LoraPlan plan = plan_loras(loras({{fixture("lora_wan_side.safetensors"), 0.8}}), stems_of(*d.spec, *base),
                                   *base, d.spec->family());
  MergedLoraWeights side(base, plan, false);
  EXPECT_EQ(side.side().size(), 4u);
  EXPECT_EQ(side.merged_count(), 0u);
  EXPECT_EQ(side.stored_dtype("blocks.0.self_attn.q.weight"), DType::F8E4M3);
  MergedLoraWeights merged(base, plan, true);
  EXPECT_EQ(merged.stored_dtype("blocks.0.self_attn.q.weight"), DType::BF16);
  expect_golden(merged, "wan_fp8.", 1e-2f);  // bf16 rounding of the merged copy
}

TEST(LoraForward, Fp8SideProductEqualsTheMergedFp32Model) {
  struct Family { const char* model; const char* case_file; const char* lora; };
  for (const Family& f : {Family{"wan_tiny_t2v.safetensors", "wan_tiny_t2v_case.safetensors", "lora_wan_side.safetensors"},
                          Family{"flux_tiny_dev.safetensors", "flux_tiny_dev_case.safetensors", "lora_flux_kohya.safetensors"}}) {
    DenoiserWeights d = as_denoiser(open_store(fixture(f.model), PartKind::Denoiser), f.model);
    const LoraOptions l = loras({{fixture(f.lora), 0.8}});
    WeightPlacement p;
    p.loras = l;
    // The same fp8 codes: run with side products, and as fp32 values with the LoRA merged.
    LoadedModel side = load_model(as_memory(*d.weights, true), make_backend(BackendChoice::Cpu, 0), {}, p, f.model);
    LoadedModel exact = load_model(as_memory(*d.weights, false), make_backend(BackendChoice::Cpu, 0), {}, p, f.model);
    LoadedModel plain = load_model(as_memory(*d.weights, true), make_backend(BackendChoice::Cpu, 0), {}, {}, f.model);
    const Tensor a = forward(side, f.case_file), b = forward(exact, f.case_file), c = forward(plain, f.case_file);
    EXPECT_LT(max_abs_diff(a, b), 2e-4f) << f.model;
    EXPECT_GT(max_abs_diff(a, c), 1e-3f) << f.model << ": the LoRA changed nothing";
    p.loras.merge_fp8 = true;
    LoadedModel merged = load_model(as_memory(*d.weights, true), make_backend(BackendChoice::Cpu, 0), {}, p, f.model);
    EXPECT_LT(max_abs_diff(forward(merged, f.case_file), b), 5e-2f) << f.model << " (bf16 copy)";
  }
}

TEST(LoraForward, RemovingLorasRestoresTheBaseBitForBit) {
  for (const char* model : {"wan_tiny_t2v.safetensors", "wan_tiny_t2v_scaled_fp8.safetensors"}) {
    const std::string lora = std::string(model).find("fp8") != std::string::npos ? "lora_wan_side.safetensors"
                                                                                  : "lora_wan_mixed.safetensors";
    LoadedModel m = load_with(model, {});
    const Tensor base = forward(m, "wan_tiny_t2v_case.safetensors");
    apply_loras(m, loras({{fixture(lora), 0.9}}));
    const Tensor with = forward(m, "wan_tiny_t2v_case.safetensors");
    EXPECT_GT(max_abs_diff(with, base), 1e-3f) << model;
    apply_loras(m, {});
    const Tensor removed = forward(m, "wan_tiny_t2v_case.safetensors");
    ASSERT_EQ(removed.nbytes(), base.nbytes());
    EXPECT_EQ(std::memcmp(removed.raw(), base.raw(), base.nbytes()), 0) << model;
    // Applied at load or later: the same bytes.
    LoadedModel at_load = load_with(model, loras({{fixture(lora), 0.9}}));
    const Tensor loaded = forward(at_load, "wan_tiny_t2v_case.safetensors");
    EXPECT_EQ(std::memcmp(loaded.raw(), with.raw(), with.nbytes()), 0) << model;
  }
}

TEST(LoraForward, AFailedApplyLeavesTheModelAsItWas) {
  LoadedModel m = load_with("wan_tiny_t2v.safetensors", loras({{fixture("lora_wan_mixed.safetensors"), 0.7}}));
  const Tensor before = forward(m, "wan_tiny_t2v_case.safetensors");
  EXPECT_THROW(apply_loras(m, loras({{fixture("lora_flux_kohya.safetensors"), 1.0}})), Error);
  const Tensor after = forward(m, "wan_tiny_t2v_case.safetensors");
  EXPECT_EQ(std::memcmp(before.raw(), after.raw(), before.nbytes()), 0);
}

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class LoraFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("raylight_lora_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<std::pair<std::string, Tensor>>& tensors) {
    const std::string p = (dir_ / name).string();
    write_safetensors(p, tensors);
    return p;
  }
  static Tensor filled(Shape s, float v) {
    Tensor t = Tensor::empty(s);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = v * float((i % 7) - 3);
    return t;
  }
  std::filesystem::path dir_;
};

}  // namespace

TEST_F(LoraFiles, UnmatchedKeysAreNamedAndSkippedOnlyOnRequest) {
  const std::string p = write("extra.safetensors",
                              {{"diffusion_model.blocks.0.self_attn.q.lora_down.weight", filled({2, 64}, 0.01f)},
                               {"diffusion_model.blocks.0.self_attn.q.lora_up.weight", filled({64, 2}, 0.01f)},
                               {"diffusion_model.blocks.0.self_attn.qq.lora_down.weight", filled({2, 64}, 0.01f)},
                               {"diffusion_model.blocks.0.self_attn.qq.lora_up.weight", filled({64, 2}, 0.01f)},
                               {"text_encoder.something", filled({3}, 1.0f)}});
  const std::string e = error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{p, 1.0}})); });
  EXPECT_NE(e.find("diffusion_model.blocks.0.self_attn.qq"), std::string::npos) << e;
  EXPECT_NE(e.find("text_encoder.something"), std::string::npos) << e;
  EXPECT_NE(e.find("--lora-skip-unmatched"), std::string::npos) << e;
  LoadedModel m = load_with("wan_tiny_t2v.safetensors", loras({{p, 1.0}}, true));
  LoadedModel plain = load_with("wan_tiny_t2v.safetensors", {});
  EXPECT_GT(max_abs_diff(forward(m, "wan_tiny_t2v_case.safetensors"), forward(plain, "wan_tiny_t2v_case.safetensors")),
            0.0f);
}

TEST_F(LoraFiles, ALoraForAnotherFamilyIsRefused) {
  const std::string e = error_of([&] {
    load_with("wan_tiny_t2v.safetensors", loras({{fixture("lora_flux_kohya.safetensors"), 1.0}}, true));
  });
  EXPECT_NE(e.find("another model family"), std::string::npos) << e;
  EXPECT_NE(e.find("Wan"), std::string::npos) << e;
  const std::string f = error_of([&] {
    load_with("flux_tiny_dev.safetensors", loras({{fixture("lora_wan_mixed.safetensors"), 1.0}}));
  });
  EXPECT_NE(f.find("another model family"), std::string::npos) << f;
}

TEST_F(LoraFiles, BadFilesAreRefusedByName) {
  const std::string shape = write("shape.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_down.weight", filled({2, 32}, 0.1f)},
                                                        {"lora_unet_blocks_0_self_attn_q.lora_up.weight", filled({64, 2}, 0.1f)}});
  EXPECT_NE(error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{shape, 1.0}})); }).find("[64, 64]"),
            std::string::npos);
  Tensor nan = filled({2, 64}, 0.1f);
  nan.f32()[5] = std::nanf("");
  const std::string bad = write("nan.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_down.weight", nan},
                                                    {"lora_unet_blocks_0_self_attn_q.lora_up.weight", filled({64, 2}, 0.1f)}});
  EXPECT_NE(error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{bad, 1.0}})); }).find("lora_down"),
            std::string::npos);
  const std::string rank = write("rank.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_down.weight", filled({3, 64}, 0.1f)},
                                                      {"lora_unet_blocks_0_self_attn_q.lora_up.weight", filled({64, 2}, 0.1f)}});
  EXPECT_NE(error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{rank, 1.0}})); }).find("rank"),
            std::string::npos);
  const std::string half = write("half.safetensors", {{"lora_unet_blocks_0_self_attn_q.lora_up.weight", filled({64, 2}, 0.1f)}});
  EXPECT_NE(error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{half, 1.0}})); }).find("no down"),
            std::string::npos);
  // Cut short: the header promises more bytes than the file has.
  std::filesystem::resize_file(bad, std::filesystem::file_size(bad) - 100);
  EXPECT_FALSE(error_of([&] { load_with("wan_tiny_t2v.safetensors", loras({{bad, 1.0}})); }).empty());
  EXPECT_THROW(parse_lora_argument("x.safetensors:nan"), Error);
  EXPECT_EQ(parse_lora_argument("a:b.safetensors").path, "a:b.safetensors");
  EXPECT_EQ(parse_lora_argument("a.safetensors:0.25").strength, 0.25);
}

namespace {

class LoraPlacement : public CliTest {
 protected:
  Tensor velocity(const std::string& flags, const std::string& name) {
    const std::string fx = std::string(RAYLIGHT_FIXTURE_DIR) + "/";
    auto c = SafetensorsFile::open(fx + "wan_tiny_t2v_case.safetensors");
    write_safetensors(path("latent.safetensors"), {{"latent", c->tensor("latent")}});
    write_safetensors(path("context.safetensors"), {{"context", c->tensor("context")}});
    const std::string out = path(name + ".safetensors");
    EXPECT_EQ(run("forward --latent " + path("latent.safetensors") + " --context " + path("context.safetensors") +
                  " --timestep 700 " + flags + " --out " + out),
              0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("velocity").to_f32();
  }
};

}  // namespace

TEST_F(LoraPlacement, ResidentFsdpAndOffloadGiveEqualResults) {
  const std::string fx = std::string(RAYLIGHT_FIXTURE_DIR) + "/";
  struct Model { std::string flags; };
  for (const Model& m : {Model{"--model " + fx + "wan_tiny_t2v.safetensors --lora " + fx + "lora_wan_mixed.safetensors:0.7 --lora " +
                               fx + "lora_wan_second.safetensors:-0.5"},
                         Model{"--model " + fx + "wan_tiny_t2v_scaled_fp8.safetensors --lora " + fx + "lora_wan_side.safetensors:0.8"}}) {
    const Tensor ref = velocity(m.flags, "ref");
    for (const char* placement : {"--fsdp", "--offload", "--ranks 2 --fsdp", "--ranks 2 --offload --ulysses 2",
                                  "--ranks 4 --fsdp --ulysses 2 --ring 2"}) {
      const Tensor got = velocity(m.flags + " " + placement, "got");
      // Ring splits only reorder softmax sums; everything else is the same arithmetic.
      if (std::string(placement).find("ring") != std::string::npos) EXPECT_LT(max_abs_diff(got, ref), 1e-5f) << placement;
      else EXPECT_EQ(max_abs_diff(got, ref), 0.0f) << placement;
    }
    const Tensor plain = velocity(m.flags.substr(0, m.flags.find(" --lora")), "plain");
    EXPECT_GT(max_abs_diff(plain, ref), 1e-3f);
  }
}
