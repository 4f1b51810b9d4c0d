// Flux.1 transformers in diffusers' files (FluxTransformer2DModel names; a model folder, its
// sharded checkpoint's index, or one file): the forward against diffusers' own float64
// forward (tests/fixtures/make_flux_diffusers_golden.py: a bf16 dev model in 5 shards, an fp8
// schnell file); the official tiny model written here under diffusers' names (split as
// diffusers' converter splits it) reads back bit for bit, on every layout (FSDP ranks read
// their shard piece by piece) and with a LoRA; fp8 pieces with their scales; and the hostile
// shard folders the loader refuses by name.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backend/backend_select.h"
#include "cli_runner.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "pipeline/comfyui_files.h"
#include "pipeline/model_loader.h"
#include "server/client_files.h"
#include "../error_of.h"
#include "../wan_cases.h"

using namespace raylight;
using namespace raylight::test;
namespace fs = std::filesystem;

namespace {

using TensorList = std::vector<std::pair<std::string, Tensor>>;

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("raylight_" + std::to_string(::getpid()) + "_" +
                                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Rows [first, first + n) of a stored tensor, as its own tensor.
Tensor rows(const Tensor& t, int64_t first, int64_t n) {
  Shape s = t.shape();
  const int64_t per = t.numel() / s[0];
  s[0] = n;
  Tensor out = Tensor::empty(s, t.dtype());
  std::memcpy(out.raw(), static_cast<const uint8_t*>(t.raw()) + first * per * dtype_size(t.dtype()), out.nbytes());
  return out;
}

Tensor cat_rows(const Tensor& a, const Tensor& b) {
  Shape s = a.shape();
  s[0] += b.dim(0);
  Tensor out = Tensor::empty(s, a.dtype());
  std::memcpy(out.raw(), a.raw(), a.nbytes());
  std::memcpy(static_cast<uint8_t*>(out.raw()) + a.nbytes(), b.raw(), b.nbytes());
  return out;
}

// The official tensors of `w` under diffusers' names, split as diffusers' converter
// (convert_flux_transformer_checkpoint_to_diffusers) splits them.
TensorList to_diffusers(const WeightStore& w, int64_t hidden) {
  TensorList out;
  auto stem_suffix = [](const std::string& n) {
    const size_t dot = n.rfind('.');
    return std::make_pair(n.substr(0, dot), n.substr(dot));
  };
  const std::map<std::string, std::string> global = {
      {"img_in", "x_embedder"}, {"txt_in", "context_embedder"},
      {"time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"},
      {"time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"},
      {"vector_in.in_layer", "time_text_embed.text_embedder.linear_1"},
      {"vector_in.out_layer", "time_text_embed.text_embedder.linear_2"},
      {"guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"},
      {"guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"},
      {"final_layer.linear", "proj_out"}};
  const std::map<std::string, std::string> dbl = {
      {"img_mod.lin", "norm1.linear"}, {"txt_mod.lin", "norm1_context.linear"},
      {"img_attn.proj", "attn.to_out.0"}, {"txt_attn.proj", "attn.to_add_out"},
      {"img_mlp.0", "ff.net.0.proj"}, {"img_mlp.2", "ff.net.2"},
      {"txt_mlp.0", "ff_context.net.0.proj"}, {"txt_mlp.2", "ff_context.net.2"},
      {"img_attn.norm.query_norm", "attn.norm_q"}, {"img_attn.norm.key_norm", "attn.norm_k"},
      {"txt_attn.norm.query_norm", "attn.norm_added_q"}, {"txt_attn.norm.key_norm", "attn.norm_added_k"}};
  const std::map<std::string, std::string> sgl = {
      {"linear2", "proj_out"}, {"modulation.lin", "norm.linear"},
      {"norm.query_norm", "attn.norm_q"}, {"norm.key_norm", "attn.norm_k"}};
  for (const auto& name : w.names()) {
    const Tensor t = w.stored(name).bytes;
    auto [stem, suffix] = stem_suffix(name);
    if (suffix == ".scale") suffix = ".weight";
    if (global.count(stem)) {
      out.emplace_back(global.at(stem) + suffix, t.clone());
    } else if (stem == "final_layer.adaLN_modulation.1") {  // [shift, scale] -> [scale, shift]
      const int64_t h = t.dim(0) / 2;
      out.emplace_back("norm_out.linear" + suffix, cat_rows(rows(t, h, h), rows(t, 0, h)));
    } else {
      const bool single = name.rfind("single_blocks.", 0) == 0;
      const size_t a = name.find('.') + 1, b = name.find('.', a);
      const std::string i = name.substr(a, b - a), inner = stem.substr(b + 1);
      const std::string block = (single ? "single_transformer_blocks." : "transformer_blocks.") + i + ".";
      if (inner == "img_attn.qkv" || inner == "txt_attn.qkv" || inner == "linear1") {
        const bool img = inner != "txt_attn.qkv";
        const char* q[] = {"attn.to_q", "attn.to_k", "attn.to_v"};
        const char* c[] = {"attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"};
        for (int k = 0; k < 3; ++k) out.emplace_back(block + (img ? q[k] : c[k]) + suffix, rows(t, k * hidden, hidden));
        if (inner == "linear1") out.emplace_back(block + "proj_mlp" + suffix, rows(t, 3 * hidden, t.dim(0) - 3 * hidden));
      } else {
        out.emplace_back(block + (single ? sgl : dbl).at(inner) + suffix, t.clone());
      }
    }
  }
  return out;
}

// `tensors` written as diffusers' save_pretrained writes a sharded model into `dir`.
void write_sharded(const std::string& dir, const TensorList& tensors, int shards, const std::string& config) {
  fs::create_directories(dir);
  nlohmann::json map = nlohmann::json::object();
  const size_t per = (tensors.size() + shards - 1) / shards;
  for (int s = 0; s < shards; ++s) {
    char name[96];
    std::snprintf(name, sizeof name, "diffusion_pytorch_model-%05d-of-%05d.safetensors", s + 1, shards);
    TensorList part(tensors.begin() + std::min(tensors.size(), s * per), tensors.begin() + std::min(tensors.size(), (s + 1) * per));
    for (const auto& [n, t] : part) map[n] = name;
    write_safetensors(dir + "/" + name, part, {{"format", "pt"}});
  }
  write_text(dir + "/diffusion_pytorch_model.safetensors.index.json",
             nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", map}}.dump(2));
  if (!config.empty()) write_text(dir + "/config.json", config);
}

const char* kTinyConfig = R"({"_class_name": "FluxTransformer2DModel", "num_attention_heads": 2,
  "attention_head_dim": 32, "axes_dims_rope": [4, 14, 14]})";

Conditioning case_conditioning(const SafetensorsFile& c, bool guidance) {
  Conditioning cond{{"context", c.tensor("context").to_f32()}, {"pooled", c.tensor("pooled").to_f32()}};
  if (guidance) cond["guidance"] = c.tensor("guidance").to_f32();
  return cond;
}

Tensor forward(LoadedModel& m, const SafetensorsFile& c, bool guidance) {
  const Conditioning cond = m.spec->check_conditioning(case_conditioning(c, guidance), c.tensor("latent").shape());
  return m.denoiser->predict(c.tensor("latent").to_f32(), c.tensor("timestep").to_f32().f32()[0], *m.denoiser->prepare(cond));
}

}  // namespace

TEST(FluxDiffusersGolden, ShardedBf16DevMatchesDiffusersForward) {
  auto c = SafetensorsFile::open(fixture("flux_diffusers_case.safetensors"));
  const std::string folder = fixture("flux_diffusers_dev");
  for (const std::string& model : {folder, folder + "/diffusion_pytorch_model.safetensors.index.json"}) {
    LoadedModel m = load_model(model);
    EXPECT_NE(m.spec->variant().find("dev-like custom (hidden 32, 1+1 blocks)"), std::string::npos) << m.spec->variant();
    EXPECT_NE(m.spec->summary().find("1 heads x 32, mlp 128"), std::string::npos) << m.spec->summary();
    const Tensor v = forward(m, *c, true);
    EXPECT_LT(max_abs_diff(v, c->tensor("dev_velocity_f64").to_f32()), 5e-5f) << model;
    // diffusers' own forward (its timestep frequencies are fp32: ~1e-4 from exact).
    EXPECT_LT(max_abs_diff(v, c->tensor("dev_velocity").to_f32()), 5e-4f) << model;
  }
}

TEST(FluxDiffusersGolden, Fp8SchnellFileMatchesDiffusersForward) {
  auto c = SafetensorsFile::open(fixture("flux_diffusers_case.safetensors"));
  const std::string folder = fixture("flux_diffusers_schnell");
  for (const std::string& model : {folder, folder + "/diffusion_pytorch_model.safetensors"}) {
    LoadedModel m = load_model(model);
    EXPECT_NE(m.spec->variant().find("schnell-like custom"), std::string::npos) << m.spec->variant();
    EXPECT_EQ(m.base->stored_dtype("double_blocks.0.img_attn.qkv.weight"), DType::F8E4M3);
    EXPECT_EQ(m.base->stored_dtype("single_blocks.0.linear1.bias"), DType::BF16);
    const Tensor v = forward(m, *c, false);
    EXPECT_LT(max_abs_diff(v, c->tensor("schnell_velocity_f64").to_f32()), 5e-5f) << model;
    EXPECT_LT(max_abs_diff(v, c->tensor("schnell_velocity").to_f32()), 5e-4f) << model;
  }
}

TEST(FluxDiffusersView, TheOfficialModelUnderDiffusersNamesReadsBackBitForBit) {
  TempDir t;
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  write_sharded(t.path("transformer"), to_diffusers(*official, 64), 3, kTinyConfig);
  // FLUX.1-dev's root also holds the official file and the VAE beside model_index.json.
  fs::copy_file(fixture("flux_tiny_schnell.safetensors"), t.path("flux1-dev.safetensors"));
  write_text(t.path("model_index.json"), R"({"_class_name": "FluxPipeline"})");
  // The whole pipeline folder, the model folder and its index name the same model.
  for (const std::string& given : {t.dir.string(), t.path("transformer"),
                                   t.path("transformer/diffusion_pytorch_model.safetensors.index.json")}) {
    DenoiserWeights d = as_denoiser(open_store(given, PartKind::Denoiser), given);
    EXPECT_EQ(d.spec->summary(), denoiser_spec(*official, "flux1-dev")->summary() + ", diffusers names") << given;
    auto names = d.weights->names(), want = official->names();
    std::sort(names.begin(), names.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(names, want) << given;
    for (const auto& n : want) {
      const Tensor a = d.weights->stored(n).bytes, b = official->stored(n).bytes;
      ASSERT_EQ(a.shape(), b.shape()) << n;
      ASSERT_EQ(d.weights->stored_dtype(n), b.dtype()) << n;
      ASSERT_EQ(std::memcmp(a.raw(), b.raw(), b.nbytes()), 0) << n;
      // Any byte range reads the same bytes (FSDP's shards cut fused tensors anywhere).
      const size_t size = b.nbytes();
      for (size_t from : {size_t(0), size_t(1), size / 3 + 5, size / 2, size - 1}) {
        const size_t len = std::min<size_t>(size - from, size / 4 + 3);
        std::vector<uint8_t> got(len);
        d.weights->read_stored(n, from, len, got.data());
        ASSERT_EQ(std::memcmp(got.data(), static_cast<const uint8_t*>(b.raw()) + from, len), 0) << n << " @" << from;
      }
    }
  }
}

// `list` with block 0's image q/k/v as scaled fp8 sharing one scale (0.01) and block 1's
// with three (0.01, 0.02, 0.005), each beside its "<layer>.weight_scale".
void make_scaled_fp8_qkv(TensorList& list) {
  TensorList fp8;
  for (auto& [n, tensor] : list) {
    const std::string tail = n.size() > 20 ? n.substr(20) : "";  // after "transformer_blocks.N"
    const bool qkv = tail == ".attn.to_q.weight" || tail == ".attn.to_k.weight" || tail == ".attn.to_v.weight";
    const bool b0 = qkv && n.rfind("transformer_blocks.0.", 0) == 0, b1 = qkv && n.rfind("transformer_blocks.1.", 0) == 0;
    if (b0 || b1) {
      const float scale = b0 ? 0.01f : (n.find("to_q") != std::string::npos ? 0.01f : n.find("to_k") != std::string::npos ? 0.02f : 0.005f);
      Tensor v = tensor.to_f32().clone();
      for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] /= scale;
      tensor = v.to_dtype(DType::F8E4M3);
      fp8.emplace_back(n.substr(0, n.size() - 7) + ".weight_scale", Tensor::from_vector({}, {scale}));
    }
  }
  list.insert(list.end(), fp8.begin(), fp8.end());
}

TEST(FluxDiffusersView, Fp8PiecesKeepAScaleTheyShareAndAreWidenedWhereTheyDiffer) {
  TempDir t;
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  TensorList list = to_diffusers(*official, 64);
  make_scaled_fp8_qkv(list);
  write_sharded(t.path("m"), list, 4, kTinyConfig);
  DenoiserWeights d = as_denoiser(open_store(t.path("m"), PartKind::Denoiser), "m");
  const std::string same = "double_blocks.0.img_attn.qkv.weight", mixed = "double_blocks.1.img_attn.qkv.weight";
  EXPECT_EQ(d.weights->stored_dtype(same), DType::F8E4M3);
  EXPECT_EQ(d.weights->stored_scale(same), 0.01f);
  EXPECT_EQ(d.weights->stored_dtype(mixed), DType::BF16);
  EXPECT_EQ(d.weights->stored_scale(mixed), 1.0f);
  // Each widened piece is its codes times its own scale, rounded to bf16; the shared scale
  // multiplies the codes as any scaled fp8 weight's does. An official copy made of those
  // values runs the same forward.
  auto expected = std::make_unique<MemoryWeights>();
  for (const auto& n : official->names()) expected->put(n, official->stored(n).bytes.to_f32().clone());
  expected->set_metadata(official->metadata());
  Tensor shared = Tensor::empty({3 * 64, 64}), widened = Tensor::empty({3 * 64, 64});
  const Tensor got = d.weights->stored(mixed).bytes.to_f32();
  const int64_t piece = 64 * 64;
  for (int k = 0; k < 3; ++k) {
    const char* part[] = {"to_q", "to_k", "to_v"};
    const std::string src = std::string("transformer_blocks.0.attn.") + part[k] + ".weight";
    const Tensor codes = std::find_if(list.begin(), list.end(), [&](const auto& p) { return p.first == src; })->second.to_f32();
    for (int64_t i = 0; i < piece; ++i) shared.f32()[k * piece + i] = codes.f32()[i] * 0.01f;
  }
  for (int k = 0; k < 3; ++k) {
    const char* part[] = {"to_q", "to_k", "to_v"};
    const float scale[] = {0.01f, 0.02f, 0.005f};
    const std::string src = std::string("transformer_blocks.1.attn.") + part[k] + ".weight";
    const Tensor codes = std::find_if(list.begin(), list.end(), [&](const auto& p) { return p.first == src; })->second.to_f32();
    for (int64_t i = 0; i < piece; ++i) {
      const float want = Tensor::from_vector({1}, {codes.f32()[i] * scale[k]}).to_dtype(DType::BF16).to_f32().f32()[0];
      ASSERT_EQ(got.f32()[k * piece + i], want) << part[k] << " " << i;
      widened.f32()[k * piece + i] = want;
    }
  }
  expected->put(same, shared);
  expected->put(mixed, widened);
  // Byte ranges of a widened tensor equal its whole bytes.
  const Tensor whole = d.weights->stored(mixed).bytes;
  std::vector<uint8_t> part(1001);
  d.weights->read_stored(mixed, piece * 2 - 501, part.size(), part.data());
  EXPECT_EQ(std::memcmp(part.data(), static_cast<const uint8_t*>(whole.raw()) + piece * 2 - 501, part.size()), 0);
  LoadedModel a = load_model(t.path("m"));
  LoadedModel b = load_model(std::move(expected), make_backend(BackendChoice::Cpu, 0), {}, {}, "expected");
  auto c = SafetensorsFile::open(fixture("flux_tiny_dev_case.safetensors"));
  EXPECT_LT(max_abs_diff(forward(a, *c, true), forward(b, *c, true)), 1e-6f);
}

class FluxDiffusersCli : public CliTest {
 protected:
  Tensor forward(const std::string& model, const std::string& flags) {
    const std::string out = path("v.safetensors");
    const std::string c = fixture("flux_tiny_dev_case.safetensors");
    EXPECT_EQ(run("forward --model " + model + " --latent " + c + " --context " + c + " --timestep 700 " + flags +
                  " --out " + out),
              0)
        << flags << "\n" << err_;
    return SafetensorsFile::open(out)->tensor("velocity").to_f32();
  }
};

TEST_F(FluxDiffusersCli, EveryLayoutEqualsOneRankOnTheOfficialFile) {
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  const std::string folder = path("FLUX.1-tiny/transformer");
  write_sharded(folder, to_diffusers(*official, 64), 5, kTinyConfig);
  const Tensor one = forward(fixture("flux_tiny_dev.safetensors"), "");
  for (const char* exact : {"", "--ranks 2 --ulysses 2", "--ranks 2 --fsdp", "--offload", "--ranks 2 --fsdp --offload"})
    EXPECT_EQ(max_abs_diff(forward(folder, exact), one), 0.0f) << exact;
  // Three FSDP ranks (ring attention: not one rank's bits) cut the fused tensors elsewhere.
  EXPECT_EQ(max_abs_diff(forward(folder, "--ranks 3 --fsdp"), forward(fixture("flux_tiny_dev.safetensors"), "--ranks 3 --fsdp")),
            0.0f);
  EXPECT_LT(max_abs_diff(forward(folder, "--ranks 2 --ring 2"), one), 1e-5f);
  // A LoRA in diffusers names lands on the same weights whichever naming the model has.
  const std::string lora = " --lora " + fixture("lora_flux_diffusers.safetensors") + ":0.8";
  const Tensor with = forward(fixture("flux_tiny_dev.safetensors"), lora);
  EXPECT_GT(max_abs_diff(with, one), 1e-3f);
  EXPECT_EQ(max_abs_diff(forward(folder, lora), with), 0.0f);
  EXPECT_EQ(max_abs_diff(forward(folder, "--ranks 2 --fsdp" + lora), with), 0.0f);
}

TEST_F(FluxDiffusersCli, ScaledAndWidenedFp8PiecesGiveOneRanksBitsOnEveryPlacement) {
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  TensorList list = to_diffusers(*official, 64);
  make_scaled_fp8_qkv(list);
  const std::string folder = path("fp8");
  write_sharded(folder, list, 3, kTinyConfig);
  const Tensor one = forward(folder, "");
  for (const char* exact : {"--ranks 2 --fsdp", "--offload", "--ranks 2 --fsdp --offload"})
    EXPECT_EQ(max_abs_diff(forward(folder, exact), one), 0.0f) << exact;
  // Three FSDP ranks cut the widened tensor inside its bf16 pieces (ring attention on both sides).
  EXPECT_EQ(max_abs_diff(forward(folder, "--ranks 3 --fsdp"), forward(folder, "--ranks 3")), 0.0f);
}

TEST(FluxDiffusersFiles, HostileShardFoldersAreRefusedNamingWhatIsWrong) {
  TempDir t;
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  const TensorList good = to_diffusers(*official, 64);
  const std::string index = "/diffusion_pytorch_model.safetensors.index.json";
  auto load_error = [](const std::string& model) {
    return error_of([&] { as_denoiser(open_store(model, PartKind::Denoiser), model); });
  };
  auto rewrite_index = [&](const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
    std::ifstream in(dir + index);
    nlohmann::json j = nlohmann::json::parse(in);
    edit(j);
    write_text(dir + index, j.dump());
  };
  auto fresh = [&](const std::string& name, const TensorList& list = {}) {
    const std::string dir = t.path(name);
    write_sharded(dir, list.empty() ? good : list, 3, kTinyConfig);
    return dir;
  };
  std::vector<std::pair<std::string, std::string>> cases;  // model, expected piece of the message
  {  // a shard the index names is gone
    const std::string d = fresh("missing");
    fs::remove(d + "/diffusion_pytorch_model-00002-of-00003.safetensors");
    cases.push_back({d, "names shard " + d + "/diffusion_pytorch_model-00002-of-00003.safetensors, which is missing"});
  }
  for (const char* outside : {"../outside.safetensors", "/etc/passwd.safetensors", "sub/x.safetensors", ".hidden.safetensors"}) {
    const std::string d = fresh(std::string("outside") + std::to_string(cases.size()));
    rewrite_index(d, [&](nlohmann::json& j) { j["weight_map"]["x_embedder.weight"] = outside; });
    cases.push_back({d, std::string("the file \"") + outside + "\" of tensor x_embedder.weight"});
  }
  {  // the index puts a tensor in a shard that does not hold it
    const std::string d = fresh("moved");
    rewrite_index(d, [](nlohmann::json& j) {
      j["weight_map"]["x_embedder.weight"] = "diffusion_pytorch_model-00003-of-00003.safetensors";
    });
    cases.push_back({d, "x_embedder.weight is stored in shard"});
  }
  {  // a tensor stored twice, in two shards
    const std::string d = fresh("twice");
    const std::string s3 = d + "/diffusion_pytorch_model-00003-of-00003.safetensors";
    auto f = SafetensorsFile::open(s3);
    TensorList again;
    for (const auto& info : f->tensors()) again.emplace_back(info.name, f->tensor(info.name).clone());
    again.emplace_back("x_embedder.weight", official->stored("img_in.weight").bytes.clone());
    f.reset();
    write_safetensors(s3, again);
    cases.push_back({d, "(it is stored in both)"});
  }
  {  // a shard holds a tensor the index does not list
    const std::string d = fresh("unlisted");
    rewrite_index(d, [](nlohmann::json& j) { j["weight_map"].erase("proj_out.bias"); });
    cases.push_back({d, "does not list tensor proj_out.bias"});
  }
  {  // the index lists a tensor no shard holds
    const std::string d = fresh("phantom");
    rewrite_index(d, [](nlohmann::json& j) {
      j["weight_map"]["ghost.weight"] = "diffusion_pytorch_model-00001-of-00003.safetensors";
    });
    cases.push_back({d, "puts tensor ghost.weight in shard"});
  }
  {  // q and k of one attention differ in width
    TensorList bad = good;
    for (auto& [n, tensor] : bad)
      if (n == "transformer_blocks.0.attn.to_k.weight") tensor = rows(tensor, 0, 32);
    cases.push_back({fresh("narrow_k", bad), "transformer_blocks.0.attn.to_k.weight has 32 rows"});
  }
  {  // pieces whose columns differ
    TensorList bad = good;
    for (auto& [n, tensor] : bad)
      if (n == "single_transformer_blocks.1.proj_mlp.weight") tensor = Tensor::zeros({128, 63});
    cases.push_back({fresh("columns", bad), "do not fit together as rows of single_blocks.1.linear1.weight"});
  }
  {  // a piece of a fused weight is missing
    TensorList bad;
    for (const auto& p : good)
      if (p.first != "single_transformer_blocks.0.attn.to_v.bias") bad.push_back(p);
    cases.push_back({fresh("no_v", bad), "single_transformer_blocks.0.attn.to_v.bias is missing"});
  }
  {  // a tensor with no place in Flux.1
    TensorList bad = good;
    bad.emplace_back("transformer_blocks.0.attn.to_qkv_mlp_proj.weight", Tensor::zeros({4, 4}));
    cases.push_back({fresh("stray", bad), "tensor transformer_blocks.0.attn.to_qkv_mlp_proj.weight has no place"});
  }
  {  // a bitsandbytes export
    TensorList bad = good;
    bad.emplace_back("transformer_blocks.0.ff.net.2.weight.absmax", Tensor::zeros({4}));
    cases.push_back({fresh("nf4", bad), "bitsandbytes' quantised weights are not read"});
  }
  {  // config.json contradicting the tensors
    const std::string d = fresh("heads");
    write_text(d + "/config.json", R"({"num_attention_heads": 3, "attention_head_dim": 32})");
    cases.push_back({d, "config.json says 3 heads of 32, but x_embedder makes 64 features"});
    const std::string e = fresh("axes");
    write_text(e + "/config.json", R"({"num_attention_heads": 2, "axes_dims_rope": [16, 8, 8]})");
    cases.push_back({e, "axes_dims_rope [16,8,8] is not Flux.1's split"});
  }
  {  // an index that is not one
    const std::string d = fresh("json");
    write_text(d + index, "{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}");
    cases.push_back({d, "names 'a' twice"});
    const std::string e = fresh("notjson");
    write_text(e + index, "{\"weight_map\": [");
    cases.push_back({e, "is not valid JSON"});
  }
  {  // a folder with two candidate files and no diffusers name
    const std::string d = t.path("two");
    fs::create_directories(d);
    fs::copy_file(fixture("flux_tiny_dev.safetensors"), d + "/a.safetensors");
    fs::copy_file(fixture("flux_tiny_schnell.safetensors"), d + "/b.safetensors");
    cases.push_back({d, "holds several weight files; pass the one meant as --model"});
    const std::string e = t.path("empty");
    fs::create_directories(e);
    cases.push_back({e, "holds no diffusion_pytorch_model.safetensors"});
  }
  for (const auto& [model, want] : cases) EXPECT_NE(load_error(model).find(want), std::string::npos) << model << ": " << load_error(model);
  // The good folder loads.
  EXPECT_EQ(load_error(fresh("good")), "(no error)");
}

TEST(FluxDiffusersFiles, ComfyuiDirFindsADiffusersFolderAsTheModel) {
  TempDir t;
  auto official = open_store(fixture("flux_tiny_dev.safetensors"), PartKind::Denoiser);
  // ComfyUI's models/diffusers holds whole pipeline folders.
  write_sharded(t.path("models/diffusers/FLUX.1-tiny/transformer"), to_diffusers(*official, 64), 2, kTinyConfig);
  fs::create_directories(t.path("models/diffusion_models"));
  ModelFiles given;
  given.parts.text_encoders = {"tiny-flux", "tiny-flux-clip"};
  given.parts.codec = "tiny-flux";
  EXPECT_EQ(find_comfyui_files(t.dir.string(), given).model, t.path("models/diffusers/FLUX.1-tiny"));
  // A model folder in models/diffusion_models comes first.
  write_sharded(t.path("models/diffusion_models/tiny-transformer"), to_diffusers(*official, 64), 1, kTinyConfig);
  EXPECT_EQ(find_comfyui_files(t.dir.string(), given).model, t.path("models/diffusion_models/tiny-transformer"));
}

class FluxDiffusersInspect : public CliTest {};

TEST_F(FluxDiffusersInspect, AFolderIsDescribedAsItsModel) {
  ASSERT_EQ(shell(binary() + " inspect " + fixture("flux_diffusers_dev") + " > " + path("out.txt")), 0) << err_;
  const std::string out = read(path("out.txt"));
  EXPECT_NE(out.find("Flux.1"), std::string::npos) << out;
  EXPECT_NE(out.find("5 shards"), std::string::npos) << out;
  EXPECT_NE(out.find("diffusers names"), std::string::npos) << out;
}

TEST(FluxDiffusersFiles, TheServerRefusesClientNamedShardedModels) {
  // A shard beside a client's index could be a link out of the server's model folders.
  const std::string index = fixture("flux_diffusers_dev/diffusion_pytorch_model.safetensors.index.json");
  EXPECT_NE(error_of([&] { server::open_client_store("model", index, PartKind::Denoiser); }).find("sharded checkpoint's index"),
            std::string::npos);
  EXPECT_NE(error_of([&] { server::open_client_store("model", fixture("flux_diffusers_dev"), PartKind::Denoiser); })
                .find("is not a file"),
            std::string::npos);
  // One file is a file, as before.
  EXPECT_EQ(error_of([&] { server::open_client_store("model", fixture("flux_diffusers_schnell/diffusion_pytorch_model.safetensors"), PartKind::Denoiser); }),
            "(no error)");
}
