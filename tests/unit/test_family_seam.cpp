// The model-family seam: the registry recognises files of every part (under any key prefix),
// variants the tensors cannot tell apart are decided by --variant or the file name, parts
// of the wrong kind are refused naming what they are, the Wan spec answers the seam's
// questions, denoisers call the between-blocks hook, and joint sequences (several segments,
// uneven, some unrotated) attend across CPU ranks exactly as on one process.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <unistd.h>

#include "cli_runner.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/wan/wan_config.h"
#include "models/wan/wan_tiny.h"
#include "pipeline/model_loader.h"
#include "sampling/noise.h"
#include "../part_loaders.h"
#include "../wan_cases.h"
#include "../error_of.h"

using namespace raylight;
using namespace raylight::test;

namespace {

// A store that has shapes and names only: a header's worth of a big checkpoint.
class ShapesOnly final : public WeightStore {
 public:
  explicit ShapesOnly(const std::vector<std::pair<std::string, Shape>>& tensors) {
    for (const auto& [n, s] : tensors) shapes_[n] = s;
  }
  bool has(const std::string& n) const override { return shapes_.count(n) != 0; }
  Shape shape(const std::string& n) const override { return shapes_.at(n); }
  DType stored_dtype(const std::string&) const override { return DType::BF16; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& [n, s] : shapes_) out.push_back(n);
    return out;
  }
  Stored stored(const std::string& n) const override { fail("no bytes for ", n); }

 private:
  std::map<std::string, Shape> shapes_;
};

WanConfig wan_14b_config() {
  WanConfig c;
  c.dim = 5120, c.num_heads = 40, c.ffn_dim = 13824, c.num_layers = 40;
  return c;
}

}  // namespace

TEST(Registry, RecognisesEveryPartItKnows) {
  auto dit = recognise(*open_store(fixture("wan_tiny_t2v.safetensors"), PartKind::Denoiser), "dit");
  ASSERT_TRUE(dit.has_value());
  EXPECT_EQ(dit->part, PartKind::Denoiser);
  EXPECT_EQ(dit->family, "Wan 2.1");
  EXPECT_EQ(dit->variant, "Wan2.1 T2V custom (dim 64, 2 layers)");
  auto enc = recognise(*open_store(fixture("umt5_tiny_scaled_fp8.safetensors"), PartKind::TextEncoder), "enc");
  ASSERT_TRUE(enc.has_value());
  EXPECT_EQ(enc->part, PartKind::TextEncoder);
  EXPECT_EQ(enc->family, "T5");
  auto vae = recognise(*open_store(fixture("wan_vae_tiny.safetensors"), PartKind::LatentCodec), "vae");
  ASSERT_TRUE(vae.has_value());
  EXPECT_EQ(vae->part, PartKind::LatentCodec);
  EXPECT_EQ(vae->variant, "Wan 2.1 VAE (base width 4, 16 latent channels)");
  MemoryWeights other;
  other.put("encoder.layer.0.weight", Tensor::zeros({4, 4}));
  EXPECT_FALSE(recognise(other, "other").has_value());
  // The embedded models: one per part, the same family as the files.
  EXPECT_EQ(recognise(*open_store("tiny", PartKind::Denoiser), "tiny")->family, "Wan 2.1");
  EXPECT_EQ(recognise(*open_store("tiny", PartKind::TextEncoder), "tiny")->family, "T5");
  EXPECT_EQ(recognise(*open_store("tiny", PartKind::LatentCodec), "tiny")->family, "Wan 2.1");
  EXPECT_NE(error_of([] { open_store("/no/such/file.safetensors", PartKind::LatentCodec); }).find("does not exist"),
            std::string::npos);
  // A folder is a diffusers model folder: one without weights is named.
  const auto empty = std::filesystem::temp_directory_path() / ("raylight_empty_" + std::to_string(::getpid()));
  std::filesystem::create_directories(empty);
  EXPECT_NE(error_of([&] { open_store(empty.string(), PartKind::Denoiser); }).find("holds no diffusion_pytorch_model"),
            std::string::npos);
  std::filesystem::remove_all(empty);
  EXPECT_NE(error_of([] { open_store("/dev/null", PartKind::Denoiser); }).find("is not a regular file"), std::string::npos);
}

TEST(Registry, PartsOfTheWrongKindAreRefusedNamingWhatTheyAre) {
  auto cpu = make_cpu_backend();
  const std::string dit = fixture("wan_tiny_t2v.safetensors");
  std::string msg = error_of([&] { make_latent_codec(open_store(dit, PartKind::LatentCodec), *cpu, dit); });
  EXPECT_NE(msg.find(dit + " is not a VAE this build knows (it is a Wan 2.1 DiT)"), std::string::npos) << msg;
  const std::string vae = fixture("wan_vae_tiny.safetensors");
  msg = error_of([&] { make_text_encoder(open_store(vae, PartKind::TextEncoder), *cpu, vae); });
  EXPECT_NE(msg.find("is not a text encoder this build knows (it is a Wan 2.1 VAE)"), std::string::npos) << msg;
  msg = error_of([&] { denoiser_spec(*open_store(vae, PartKind::Denoiser), vae); });
  EXPECT_NE(msg.find("is not a DiT this build knows"), std::string::npos) << msg;
}

TEST(Registry, ADitUnderAnyKeyPrefixLoadsAndPredictsTheSame) {
  auto source = SafetensorsFile::open(fixture("wan_tiny_t2v.safetensors"));
  auto c = SafetensorsFile::open(fixture("wan_tiny_t2v_case.safetensors"));
  const WanInputs in = wan_case_inputs(*c);
  LoadedModel plain = load_model(fixture("wan_tiny_t2v.safetensors"));
  const Tensor want = wan_of(plain).forward(in);
  const auto dir = std::filesystem::temp_directory_path() / ("raylight_prefix_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const std::string prefix : {"diffusion_model.", "net.dit."}) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const auto& info : source->tensors()) tensors.emplace_back(prefix + info.name, source->tensor(info.name));
    const std::string path = (dir / "prefixed.safetensors").string();
    write_safetensors(path, tensors, source->metadata());
    auto r = recognise(*open_store(path, PartKind::Denoiser), path);
    ASSERT_TRUE(r.has_value()) << prefix;
    EXPECT_EQ(r->variant, "Wan2.1 T2V custom (dim 64, 2 layers)");
    LoadedModel m = load_model(path);
    EXPECT_EQ(max_abs_diff(wan_of(m).forward(in), want), 0.0f) << prefix;
  }
  std::filesystem::remove_all(dir);
}

TEST(Registry, VariantsTheTensorsCannotTellAreDecidedByNameOrFlag) {
  const ShapesOnly big(wan_expected_tensors(wan_14b_config()));
  auto spec = denoiser_spec(big, "models/wan2.1_t2v_14B_bf16.safetensors");
  EXPECT_EQ(spec->variant(), "Wan2.1 T2V 14B");
  EXPECT_NE(spec->variant_note().find("Wan 2.2 T2V A14B high-noise expert"), std::string::npos) << spec->variant_note();
  EXPECT_NE(spec->variant_note().find("Chosen: wan2.1-t2v-14b by the file name"), std::string::npos);
  // The Wan 2.2 experts run as pairs (tests/unit/test_two_experts.cpp): T2V, and I2V (image
  // channels without a CLIP branch) with the official I2V settings.
  EXPECT_EQ(denoiser_spec(big, "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors")->variant(),
            "Wan 2.2 T2V A14B high-noise expert");
  WanConfig i2v = wan_14b_config();
  i2v.in_dim = 36;
  const auto i2v_spec =
      denoiser_spec(ShapesOnly(wan_expected_tensors(i2v)), "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors");
  EXPECT_EQ(i2v_spec->variant(), "Wan 2.2 I2V A14B low-noise expert");
  ASSERT_TRUE(i2v_spec->expert().has_value());
  EXPECT_FALSE(i2v_spec->expert()->high_noise);
  EXPECT_EQ(i2v_spec->expert()->boundary, 900.0);
  EXPECT_EQ(i2v_spec->expert()->cfg_high, 3.5);
  EXPECT_EQ(i2v_spec->expert()->cfg_low, 3.5);
  EXPECT_EQ(i2v_spec->defaults().shift, 5.0);
  EXPECT_EQ(i2v_spec->defaults().steps, 40);
  EXPECT_EQ(i2v_spec->image_inputs().max_images, 1);
  EXPECT_EQ(i2v_spec->denoiser_slot().name_parts, (std::vector<std::string>{"wan2.2", "i2v", "low"}));
  std::string msg;
  // --variant decides over the file name, and must be one of the variants.
  spec = denoiser_spec(big, "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.1-t2v-14b");
  EXPECT_NE(spec->variant_note().find("by --variant"), std::string::npos);
  msg = error_of([&] { denoiser_spec(big, "x.safetensors", "flux-dev"); });
  EXPECT_NE(msg.find("it can be: wan2.1-t2v-14b, wan2.2-t2v-a14b-high, wan2.2-t2v-a14b-low"), std::string::npos) << msg;
  // The 1.3B model has one variant; the tiny one none.
  WanConfig small;
  small.dim = 1536, small.num_heads = 12, small.ffn_dim = 8960, small.num_layers = 30;
  EXPECT_EQ(denoiser_spec(ShapesOnly(wan_expected_tensors(small)), "a.safetensors")->variant_note(), "");
  EXPECT_NE(error_of([] { denoiser_spec(*wan_tiny_weights(), "tiny", "wan2.1-t2v-14b"); }).find("no named variants"),
            std::string::npos);
}

TEST(WanSpec, AnswersTheSeamsQuestions) {
  auto tiny = denoiser_spec(*wan_tiny_weights(), "tiny");
  EXPECT_EQ(tiny->embedded_name(), "tiny");
  const SamplingDefaults d = tiny->defaults();
  EXPECT_EQ(d.width, 128);
  EXPECT_EQ(d.frames, 9);
  EXPECT_EQ(d.steps, 10);
  EXPECT_EQ(tiny->latent_shape({128, 128, 9}), (Shape{16, 3, 16, 16}));
  EXPECT_EQ(tiny->sequence_tokens({16, 3, 16, 16}), 3 * 8 * 8);
  EXPECT_EQ(tiny->block_of("blocks.1.ffn.0.weight"), 1);
  EXPECT_EQ(tiny->block_of("head.head.weight"), -1);
  const LatentFormat f = tiny->latent_format();
  EXPECT_EQ(f.comfyui_name, "Wan21");
  EXPECT_EQ(f.item_rank, 4);
  ASSERT_EQ(f.mean.size(), 16u);
  ASSERT_EQ(f.std.size(), 16u);
  EXPECT_FALSE(tiny->builtin_conditioning(0).empty());
  const auto file = denoiser_spec(*open_store(fixture("wan_tiny_t2v.safetensors"), PartKind::Denoiser), "f");
  EXPECT_EQ(file->embedded_name(), "");
  EXPECT_TRUE(file->builtin_conditioning(0).empty());
  EXPECT_EQ(file->defaults().width, 832);
  // Conditioning checks name the tensor; a leading batch of one is dropped.
  Conditioning ok = file->check_conditioning({{"context", Tensor::zeros({1, 7, 32})}}, {16, 1, 4, 4});
  EXPECT_EQ(ok.at("context").shape(), (Shape{7, 32}));
  EXPECT_NE(error_of([&] { file->check_conditioning({{"context", Tensor::zeros({7, 31})}}, {16, 1, 4, 4}); })
                .find("tensor 'context' has shape [7, 31]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { file->check_conditioning({{"pooled", Tensor::zeros({7})}}, {16, 1, 4, 4}); })
                .find("tensor 'pooled' is not an input"),
            std::string::npos);
}

TEST(Denoiser, CallsTheHookBetweenBlocksAndStopsWhenItThrows) {
  LoadedModel m = load_model("tiny");
  std::vector<int> seen;
  m.denoiser->set_block_hook([&](int block) { seen.push_back(block); });
  const auto c = m.denoiser->prepare(m.spec->builtin_conditioning(0));
  const Tensor x = gaussian_noise({16, 1, 4, 4}, 3);
  const Tensor v = m.denoiser->predict(x, 500.0, *c);
  EXPECT_EQ(seen, (std::vector<int>{0, 1}));
  m.denoiser->set_block_hook([](int block) {
    if (block == 0) fail("stop after block 0");
  });
  EXPECT_NE(error_of([&] { m.denoiser->predict(x, 500.0, *c); }).find("stop after block 0"), std::string::npos);
  m.denoiser->set_block_hook({});
  EXPECT_EQ(max_abs_diff(m.denoiser->predict(x, 500.0, *c), v), 0.0f) << "a stopped forward leaves no state behind";
}

class JointSequence : public CliTest {};

TEST_F(JointSequence, AttendsAcrossRanksAsOneProcessDoes) {
  for (const char* layout : {"--ranks 1", "--ranks 2 --ulysses 2", "--ranks 4 --ulysses 4", "--ranks 2 --ring 2",
                             "--ranks 3 --ring 3", "--ranks 4 --ulysses 2 --ring 2"}) {
    const std::string log = path("joint.txt");
    const int rc = std::system((std::string(RAYLIGHT_JOINT_ATTENTION_CHECK) + " " + layout + " > " + log + " 2>&1").c_str());
    const std::string out = read(log);
    EXPECT_EQ(rc, 0) << layout << ": " << out;
    EXPECT_NE(out.find("max difference"), std::string::npos) << layout << ": " << out;
  }
}
