// The Flux file formats beside the official single files: all-in-one checkpoints (ComfyUI
// models/checkpoints: DiT, T5-XXL, CLIP-L and VAE under their prefixes in one file) make the
// picture the same weights make as separate files, with parts given explicitly overriding
// the embedded ones; diffusers-named VAEs decode and encode bit for bit as the official
// layout of the same weights (names from diffusers' own converter, a committed table); Flux
// LoRAs in diffusers/PEFT names land on row runs of the fused qkv / linear1 weights as
// ComfyUI's formula says (float64 goldens), merged and as fp8 side products alike.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <unistd.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "cli_runner.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/vae/flux_vae_codec.h"
#include "models/vae/flux_vae_tiny.h"
#include "parallel/lora/merged_lora_weights.h"
#include "pipeline/model_loader.h"
#include "../error_of.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;
namespace fs = std::filesystem;

namespace {

using TensorList = std::vector<std::pair<std::string, Tensor>>;

bool ends_with(const std::string& s, const std::string& x) {
  return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
}

// A folder of its own for a test that writes files, removed after.
struct TempDir {
  fs::path dir = fs::temp_directory_path() /
                 ("raylight_" + std::to_string(::getpid()) + "_" +
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

// A store's tensors under `prefix`; 2-D block matrices as fp8 codes when asked.
void add_store(TensorList& out, std::map<std::string, std::string>& meta, const WeightStore& w,
               const std::string& prefix, bool fp8_blocks = false) {
  for (const auto& name : w.names()) {
    Tensor t = w.stored(name).bytes.clone();
    const bool block = name.find("blocks.") != std::string::npos && t.ndim() == 2 && ends_with(name, ".weight");
    if (fp8_blocks && block) t = t.to_f32().to_dtype(DType::F8E4M3);
    out.emplace_back(prefix + name, t);
  }
  // The shape facts tiny files carry (heads); not what names an embedded model.
  for (const auto& [k, v] : w.metadata())
    if (k != "raylight.embedded" && k != "raylight.model") meta[k] = v;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class FluxFiles : public CliTest {
 protected:
  // The tiny-flux parts as the four files ComfyUI users have and as one all-in-one file.
  void write_files(bool fp8 = false, const std::string& aio = "flux1-dev-aio.safetensors") {
    struct Part { const char* file; const char* source; PartKind kind; const char* prefix; };
    const Part parts[] = {{"dit.safetensors", "tiny-flux", PartKind::Denoiser, "model.diffusion_model."},
                          {"t5.safetensors", "tiny-flux", PartKind::TextEncoder, "text_encoders.t5xxl.transformer."},
                          {"clip.safetensors", "tiny-flux-clip", PartKind::TextEncoder, "text_encoders.clip_l.transformer."},
                          {"ae.safetensors", "tiny-flux", PartKind::LatentCodec, "vae."}};
    TensorList all;
    std::map<std::string, std::string> all_meta;
    for (const Part& p : parts) {
      auto store = open_store(p.source, p.kind);
      TensorList one;
      std::map<std::string, std::string> meta;
      add_store(one, meta, *store, "", fp8 && p.kind == PartKind::Denoiser);
      write_safetensors(path(p.file), one, meta);
      add_store(all, all_meta, *store, p.prefix, fp8 && p.kind == PartKind::Denoiser);
    }
    write_safetensors(path(aio), all, all_meta);
  }
  const std::string fast = " --width 32 --height 32 --steps 2 --prompt 'a red fox' ";
  std::string separate() const {
    return " --text-encoder " + path("t5.safetensors") + " --text-encoder-2 " + path("clip.safetensors") + " --vae " +
           path("ae.safetensors");
  }
};

}  // namespace

TEST_F(FluxFiles, AnAllInOneCheckpointMakesTheSeparateFilesPicture) {
  write_files();
  ASSERT_EQ(run("generate --model " + path("dit.safetensors") + separate() + fast + "--out " + path("a.png")), 0) << err_;
  ASSERT_EQ(run("generate --model " + path("flux1-dev-aio.safetensors") + fast + "--out " + path("b.png")), 0) << err_;
  EXPECT_NE(err_.find("Flux.1 dev"), std::string::npos) << err_;
  const std::string a = read_bytes(path("a.png"));
  ASSERT_GT(a.size(), 100u);
  EXPECT_EQ(read_bytes(path("b.png")), a);
  // The same file as every part, named explicitly.
  ASSERT_EQ(run("generate --model " + path("flux1-dev-aio.safetensors") + " --text-encoder " +
                path("flux1-dev-aio.safetensors") + " --vae " + path("flux1-dev-aio.safetensors") + fast + "--out " +
                path("c.png")),
            0)
      << err_;
  EXPECT_EQ(read_bytes(path("c.png")), a);
  // inspect names the parts inside.
  ASSERT_EQ(shell(binary() + " inspect " + path("flux1-dev-aio.safetensors") + " > " + path("inspect.txt")), 0) << err_;
  const std::string shown = read(path("inspect.txt"));
  EXPECT_NE(shown.find("holds:       T5-XXL text encoder under text_encoders.t5xxl.transformer."), std::string::npos) << shown;
  EXPECT_NE(shown.find("holds:       CLIP-L text encoder under text_encoders.clip_l.transformer."), std::string::npos) << shown;
  EXPECT_NE(shown.find("holds:       Flux VAE under vae.: Flux VAE"), std::string::npos) << shown;
}

TEST_F(FluxFiles, APartGivenExplicitlyOverridesTheEmbeddedOne) {
  write_files();
  // Another VAE: the tiny VAE with its output bias moved.
  auto vae = open_store("tiny-flux", PartKind::LatentCodec);
  TensorList t;
  std::map<std::string, std::string> meta;
  add_store(t, meta, *vae, "");
  for (auto& [name, tensor] : t)
    if (name == "decoder.conv_out.bias") {
      tensor = tensor.to_f32().clone();
      for (int64_t i = 0; i < tensor.numel(); ++i) tensor.f32()[i] += 0.25f;
    }
  write_safetensors(path("other_ae.safetensors"), t, meta);
  const std::string aio = path("flux1-dev-aio.safetensors");
  ASSERT_EQ(run("generate --model " + aio + fast + "--out " + path("a.png")), 0) << err_;
  ASSERT_EQ(run("generate --model " + aio + " --vae " + path("other_ae.safetensors") + fast + "--out " + path("b.png")), 0)
      << err_;
  ASSERT_EQ(run("generate --model " + path("dit.safetensors") + " --text-encoder " + path("t5.safetensors") +
                " --text-encoder-2 " + path("clip.safetensors") + " --vae " + path("other_ae.safetensors") + fast +
                "--out " + path("c.png")),
            0)
      << err_;
  EXPECT_NE(read_bytes(path("a.png")), read_bytes(path("b.png")));
  EXPECT_EQ(read_bytes(path("b.png")), read_bytes(path("c.png")));
}

TEST_F(FluxFiles, Fp8AllInOneEqualsTheFp8SeparateFiles) {
  write_files(true);
  ASSERT_EQ(run("generate --model " + path("dit.safetensors") + separate() + fast + "--out " + path("a.png")), 0) << err_;
  ASSERT_EQ(run("generate --model " + path("flux1-dev-aio.safetensors") + fast + "--out " + path("b.png")), 0) << err_;
  EXPECT_EQ(read_bytes(path("a.png")), read_bytes(path("b.png")));
  // The DiT is read as fp8 from the all-in-one file, not widened.
  auto d = as_denoiser(open_store(path("flux1-dev-aio.safetensors"), PartKind::Denoiser), "aio");
  EXPECT_EQ(d.weights->stored_dtype("double_blocks.0.img_attn.qkv.weight"), DType::F8E4M3);
}

TEST_F(FluxFiles, ComfyuiDirFindsAnAllInOneCheckpoint) {
  write_files();
  fs::create_directories(path("comfy/models/checkpoints"));
  fs::rename(path("flux1-dev-aio.safetensors"), path("comfy/models/checkpoints/flux1-dev-fp8.safetensors"));
  ASSERT_EQ(run("generate --model " + path("dit.safetensors") + separate() + fast + "--out " + path("a.png")), 0) << err_;
  ASSERT_EQ(run("generate --comfyui-dir " + path("comfy") + fast + "--out " + path("b.png")), 0) << err_;
  EXPECT_EQ(read_bytes(path("b.png")), read_bytes(path("a.png")));
}

TEST_F(FluxFiles, AnAllInOneCheckpointMissingAPartNamesIt) {
  // DiT, CLIP and VAE, no T5.
  TensorList all;
  std::map<std::string, std::string> meta;
  add_store(all, meta, *open_store("tiny-flux", PartKind::Denoiser), "model.diffusion_model.");
  add_store(all, meta, *open_store("tiny-flux-clip", PartKind::TextEncoder), "text_encoders.clip_l.transformer.");
  add_store(all, meta, *open_store("tiny-flux", PartKind::LatentCodec), "vae.");
  write_safetensors(path("aio.safetensors"), all, meta);
  EXPECT_NE(run("generate --model " + path("aio.safetensors") + fast + "--out " + path("a.png")), 0);
  EXPECT_NE(err_.find("needs a T5-XXL text encoder (--text-encoder FILE)"), std::string::npos) << err_;
  EXPECT_NE(err_.find("text_encoders.t5xxl.transformer."), std::string::npos) << err_;
  // Given the T5 file, the rest comes from the checkpoint.
  write_files();
  EXPECT_EQ(run("generate --model " + path("aio.safetensors") + " --text-encoder " + path("t5.safetensors") + fast +
                "--out " + path("b.png")),
            0)
      << err_;
  ASSERT_EQ(run("generate --model " + path("dit.safetensors") + separate() + fast + "--out " + path("c.png")), 0) << err_;
  EXPECT_EQ(read_bytes(path("b.png")), read_bytes(path("c.png")));
  EXPECT_FALSE(fs::exists(path("a.png")));
}

TEST_F(FluxFiles, DuplicatePartsAreRefused) {
  write_files();
  auto vae = open_store("tiny-flux", PartKind::LatentCodec);
  auto dit = open_store("tiny-flux", PartKind::Denoiser);
  {
    TensorList all;
    std::map<std::string, std::string> meta;
    add_store(all, meta, *dit, "model.diffusion_model.");
    add_store(all, meta, *vae, "vae.");
    add_store(all, meta, *vae, "first_stage_model.");
    write_safetensors(path("vae_twice.safetensors"), all, meta);
  }
  EXPECT_NE(run("generate --model " + path("vae_twice.safetensors") + fast + "--out " + path("a.png")), 0);
  EXPECT_NE(err_.find("holds the Flux VAE twice, under vae. and first_stage_model."), std::string::npos) << err_;
  {
    TensorList all;
    std::map<std::string, std::string> meta;
    add_store(all, meta, *dit, "model.diffusion_model.");
    add_store(all, meta, *dit, "");
    write_safetensors(path("dit_twice.safetensors"), all, meta);
  }
  const std::string e = error_of([&] { open_store(path("dit_twice.safetensors"), PartKind::Denoiser); });
  EXPECT_NE(e.find("twice, with and without model.diffusion_model."), std::string::npos) << e;
  EXPECT_NE(run("inspect " + path("dit_twice.safetensors")), 0);
}

TEST_F(FluxFiles, AMismatchedEmbeddedPartIsRefusedNamingItsTensor) {
  TensorList all;
  std::map<std::string, std::string> meta;
  add_store(all, meta, *open_store("tiny-flux", PartKind::Denoiser), "model.diffusion_model.");
  add_store(all, meta, *open_store("tiny-flux", PartKind::TextEncoder), "text_encoders.t5xxl.transformer.");
  add_store(all, meta, *open_store("tiny-flux-clip", PartKind::TextEncoder), "text_encoders.clip_l.transformer.");
  auto vae = open_store("tiny-flux", PartKind::LatentCodec);
  for (const auto& name : vae->names()) {
    Tensor t = vae->stored(name).bytes.clone();
    if (name == "decoder.conv_out.weight") t = Tensor::zeros({3, t.dim(1), 3, 1});
    all.emplace_back("vae." + name, t);
  }
  write_safetensors(path("aio.safetensors"), all, meta);
  EXPECT_NE(run("generate --model " + path("aio.safetensors") + fast + "--out " + path("a.png")), 0);
  EXPECT_NE(err_.find("decoder.conv_out.weight"), std::string::npos) << err_;
  EXPECT_FALSE(fs::exists(path("a.png")));
}

namespace {

// The tiny VAE under diffusers' names, from the table diffusers' converter made.
std::unique_ptr<MemoryWeights> diffusers_vae(const std::string& drop = "", const std::string& extra = "") {
  std::ifstream in(fixture("flux_vae_diffusers_names.json"));
  const auto table = nlohmann::json::parse(in);
  std::map<std::string, std::pair<std::string, int>> rename;
  for (const auto& row : table) rename[row[0].get<std::string>()] = {row[1].get<std::string>(), row[2].get<int>()};
  auto official = flux_vae_tiny_weights();
  auto out = std::make_unique<MemoryWeights>();
  for (const auto& name : official->names()) {
    auto it = rename.find(name);
    if (it == rename.end()) ADD_FAILURE() << name << " is not in diffusers' table";
    if (it == rename.end() || it->second.first == drop) continue;
    Tensor t = official->stored(name).bytes.clone();
    if (it->second.second == 2) t = t.reshape({t.dim(0), t.dim(1)});  // the attention's linear
    out->put(it->second.first, t);
  }
  if (!extra.empty()) out->put(extra, Tensor::zeros({4, 4, 1, 1}));
  return out;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace

TEST(FluxDiffusersVae, DecodesAndEncodesAsTheOfficialLayoutBitForBit) {
  auto cpu = make_cpu_backend();
  auto golden = SafetensorsFile::open(fixture("flux_vae_tiny_case.safetensors"));
  auto official = make_flux_vae_codec(flux_vae_tiny_weights(), *cpu, "official");
  auto diffusers = make_latent_codec(diffusers_vae(), *cpu, "diffusers");
  const Tensor latent = golden->tensor("latent").to_f32();
  const Tensor a = official->decode(latent), b = diffusers->decode(latent);
  EXPECT_TRUE(same_bits(a, b));
  EXPECT_TRUE(same_bits(official->encode(a), diffusers->encode(a)));
}

TEST(FluxDiffusersVae, IsRecognisedFromAFileAndRefusesWhatDoesNotFit) {
  TempDir dir;
  const std::string file = dir.path("vae.safetensors");
  auto w = diffusers_vae();
  TensorList t;
  for (const auto& name : w->names()) t.emplace_back(name, w->stored(name).bytes);
  write_safetensors(file, t);
  auto store = open_store(file, PartKind::LatentCodec);
  const auto r = recognise(*store, file);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->part, PartKind::LatentCodec);
  EXPECT_NE(r->variant.find("diffusers names"), std::string::npos) << r->variant;

  auto cpu = make_cpu_backend();
  std::string e = error_of([&] { make_latent_codec(diffusers_vae("decoder.up_blocks.1.resnets.2.conv2.weight"), *cpu, "v"); });
  EXPECT_NE(e.find("decoder.up.2.block.2.conv2.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("diffusers name decoder.up_blocks.1.resnets.2.conv2.weight"), std::string::npos) << e;
  e = error_of([&] { make_latent_codec(diffusers_vae("", "quant_conv.weight"), *cpu, "v"); });
  EXPECT_NE(e.find("quant_conv"), std::string::npos) << e;
  e = error_of([&] { make_latent_codec(diffusers_vae("", "decoder.mid_block.attentions.0.query.weight"), *cpu, "v"); });
  EXPECT_NE(e.find("are both the Flux VAE's decoder.mid.attn_1.q.weight"), std::string::npos) << e;
}

namespace {

LoraOptions lora_options(const std::string& file, double strength, bool merge = false) {
  LoraOptions o;
  o.files = {{file, strength}};
  o.merge_fp8 = merge;
  return o;
}

// The fixture LoRA without its LoHa and diff_b adapters: low-rank only, so every fp8 weight
// it patches runs as a side product.
std::string low_rank_only(const TempDir& dir) {
  auto f = SafetensorsFile::open(fixture("lora_flux_diffusers.safetensors"));
  TensorList t;
  for (const auto& info : f->tensors())
    if (info.name.find("hada_") == std::string::npos && info.name.find("diff_b") == std::string::npos &&
        info.name.find("attn.to_k.alpha") == std::string::npos)
      t.emplace_back(info.name, f->tensor(info.name));
  // to_k's alpha stays with its factors (the LoHa's alpha sits on single block 0).
  t.emplace_back("transformer.transformer_blocks.0.attn.to_k.alpha",
                 f->tensor("transformer.transformer_blocks.0.attn.to_k.alpha"));
  const std::string path = dir.path("low_rank.safetensors");
  write_safetensors(path, t);
  return path;
}

std::unique_ptr<MemoryWeights> flux_memory(bool fp8) {
  auto d = as_denoiser(open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux");
  auto m = std::make_unique<MemoryWeights>();
  for (const auto& name : d.weights->names()) {
    Tensor t = d.weights->stored(name).bytes.to_f32().clone();
    const bool matrix = t.ndim() == 2 && ends_with(name, ".weight");
    if (matrix) t = t.to_dtype(DType::F8E4M3);  // the same values in both: fp8-representable
    if (matrix && !fp8) t = t.to_f32();
    m->put(name, t);
  }
  m->set_metadata(d.weights->metadata());
  return m;
}

Tensor flux_forward(LoadedModel& m) {
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  const Tensor latent = c->tensor("latent").to_f32();
  Conditioning cond;
  for (const char* k : {"context", "pooled", "guidance"})
    if (c->has(k)) cond[k] = c->tensor(k).to_f32();
  cond = m.spec->check_conditioning(cond, latent.shape());
  auto prepared = m.denoiser->prepare(cond);
  return m.denoiser->predict(latent, c->tensor("timestep").to_f32().f32()[0], *prepared);
}

float max_diff(const Tensor& a, const Tensor& b) {
  float m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(a.f32()[i] - b.f32()[i]));
  return m;
}

}  // namespace

TEST(FluxLoraNames, DiffusersQkvSlicesFollowComfyFormula) {
  DenoiserWeights d = as_denoiser(open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux");
  std::shared_ptr<WeightStore> base(std::move(d.weights));
  const LoraPlan plan = plan_loras(lora_options(fixture("lora_flux_diffusers.safetensors"), 0.8),
                                   lora_key_stems(*d.spec, *base), *base, d.spec->family());
  // to_q, to_k, to_v and to_k's diff_b: three patches on one fused weight, one on its bias.
  EXPECT_EQ(plan.patches.at("double_blocks.0.img_attn.qkv.weight").size(), 3u);
  EXPECT_EQ(plan.patches.at("single_blocks.0.linear1.weight").size(), 4u);
  MergedLoraWeights merged(base, plan, false);
  auto c = SafetensorsFile::open(fixture("lora_flux_slices_case.safetensors"));
  int checked = 0;
  for (const auto& info : c->tensors()) {
    const std::string name = info.name.substr(std::string("expected.").size());
    const Tensor got = merged.stored(name).bytes.to_f32();
    const Tensor want = c->tensor(info.name).to_f32();
    ASSERT_EQ(got.shape(), want.shape()) << name;
    EXPECT_LT(max_diff(got, want), 2e-6f) << name;
    ++checked;
  }
  EXPECT_EQ(checked, 6);
  // Rows no slice names keep the base bits: txt qkv of block 1 outside add_k_proj's rows.
  const Tensor txt = merged.stored("double_blocks.1.txt_attn.qkv.weight").bytes.to_f32();
  const Tensor was = base->stored("double_blocks.1.txt_attn.qkv.weight").bytes.to_f32();
  const int64_t h = was.dim(1);
  EXPECT_EQ(std::memcmp(txt.f32(), was.f32(), h * h * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(txt.f32() + 2 * h * h, was.f32() + 2 * h * h, h * h * sizeof(float)), 0);
}

TEST(FluxLoraNames, Fp8SideProductsOnSlicesEqualTheMergedModel) {
  TempDir dir;
  const std::string lora = low_rank_only(dir);
  WeightPlacement p;
  p.loras = lora_options(lora, 0.8);
  LoadedModel side = load_model(flux_memory(true), make_backend(BackendChoice::Cpu, 0), {}, p, "fp8");
  LoadedModel exact = load_model(flux_memory(false), make_backend(BackendChoice::Cpu, 0), {}, p, "fp32");
  LoadedModel plain = load_model(flux_memory(true), make_backend(BackendChoice::Cpu, 0), {}, {}, "fp8");
  // Every patched fp8 weight runs as a side product (sliced factors padded to the whole weight).
  auto plan = plan_loras(p.loras, lora_key_stems(*side.spec, *side.base), *side.base, "Flux.1");
  MergedLoraWeights placement(side.base, plan, false);
  EXPECT_EQ(placement.merged_count(), 0u);
  EXPECT_EQ(placement.side().size(), plan.patches.size());
  const Tensor a = flux_forward(side), b = flux_forward(exact), c = flux_forward(plain);
  EXPECT_LT(max_diff(a, b), 2e-4f);
  EXPECT_GT(max_diff(a, c), 1e-3f) << "the LoRA changed nothing";
}

TEST(FluxLoraNames, KohyaFusedNamesLandOnTheWholeWeights) {
  DenoiserWeights d = as_denoiser(open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser), "flux");
  const auto stems = lora_key_stems(*d.spec, *d.weights);
  for (const auto& [stem, weight] : std::vector<std::pair<std::string, std::string>>{
           {"lora_unet_double_blocks_0_img_attn_qkv", "double_blocks.0.img_attn.qkv.weight"},
           {"lora_unet_single_blocks_0_linear1", "single_blocks.0.linear1.weight"},
           {"transformer.single_transformer_blocks.1.proj_out", "single_blocks.1.linear2.weight"},
           {"transformer.transformer_blocks.1.ff.net.0.proj", "double_blocks.1.img_mlp.0.weight"}}) {
    ASSERT_TRUE(stems.count(stem)) << stem;
    EXPECT_EQ(stems.at(stem).weight, weight);
    EXPECT_EQ(stems.at(stem).rows, 0);
  }
  const LoraTarget mlp = stems.at("transformer.single_transformer_blocks.1.proj_mlp");
  EXPECT_EQ(mlp.weight, "single_blocks.1.linear1.weight");
  EXPECT_EQ(mlp.row_offset, 3 * 64);
  EXPECT_EQ(mlp.rows, 128);
  const LoraTarget qkv = stems.at("diffusion_model.single_blocks.0.linear1_qkv");
  EXPECT_EQ(qkv.weight, "single_blocks.0.linear1.weight");
  EXPECT_EQ(qkv.row_offset, 0);
  EXPECT_EQ(qkv.rows, 3 * 64);
}

TEST(FluxFilesParts, AScaledFp8PartUnderItsPrefixEncodesAsItsOwnFile) {
  // The tiny umT5 in ComfyUI's scaled fp8 (codes, scale_weight tensors, the scaled_fp8
  // marker) under the T5 prefix of an all-in-one file, beside an unrelated DiT-like tensor.
  TempDir dir;
  const std::string own = fixture("umt5_tiny_scaled_fp8.safetensors");
  auto f = SafetensorsFile::open(own);
  TensorList t;
  for (const auto& info : f->tensors()) t.emplace_back("text_encoders.t5xxl.transformer." + info.name, f->tensor(info.name));
  t.emplace_back("model.diffusion_model.img_in.weight", Tensor::zeros({2, 2}));
  const std::string aio = dir.path("aio.safetensors");
  write_safetensors(aio, t, f->metadata());
  const PartSlot slot{PartKind::TextEncoder, "T5-XXL text encoder", "text_encoders", {"t5xxl"},
                      {"text_encoders.t5xxl.transformer."}};
  ASSERT_EQ(checkpoint_part_prefix(aio, slot).value_or(""), "text_encoders.t5xxl.transformer.");
  EXPECT_FALSE(checkpoint_part_prefix(own, slot).has_value());
  auto part = open_part(aio, slot);
  auto file = open_store(own, PartKind::TextEncoder);
  EXPECT_EQ(part->names(), file->names());  // scale tensors and the marker hidden alike
  auto cpu = make_cpu_backend();
  auto a = make_text_encoder(std::move(part), *cpu, aio);
  auto b = make_text_encoder(std::move(file), *cpu, own);
  const Conditioning x = a->encode("a red fox"), y = b->encode("a red fox");
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [name, value] : y) EXPECT_TRUE(same_bits(x.at(name), value)) << name;
}
