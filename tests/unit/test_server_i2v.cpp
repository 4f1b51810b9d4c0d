// POST /v1/generate with pictures (issue 16) against a real `raylight serve` on a tiny Wan
// I2V model: the safetensors body (pictures + the JSON under "request"), the latent equal
// bit for bit to /v1/sample given the conditioning made here (tiny umT5 prompts; y and
// clip_fea from the same picture, VAE and CLIP), and the refusals.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "backend/backend_select.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "models/t5/umt5_encoder.h"
#include "models/wan/wan_image_condition.h"
#include "models/wan/wan_tiny.h"
#include "sampling/noise.h"
#include "test_server_support.h"
#include "../part_loaders.h"
#include "../wan_cases.h"

using namespace server_test;
using raylight::Tensor;

namespace {

const nlohmann::json kSmall = {{"width", 32}, {"height", 32}, {"frames", 5}, {"steps", 2}, {"seed", 3}};
const std::vector<std::string> kOctet = {"Content-Type: application/octet-stream"};

std::string clip_file() { return raylight::test::fixture("clip_vision_tiny.safetensors"); }

nlohmann::json request(const nlohmann::json& extra = {}) {
  nlohmann::json j = kSmall;
  j["prompt"] = "a red fox";
  j["format"] = "latent";
  j["clip_vision"] = clip_file();
  j["text_encoder"] = "tiny";
  j["vae"] = "tiny";
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return j;
}

std::string body(const nlohmann::json& j, const std::vector<std::pair<std::string, Tensor>>& pictures) {
  return raylight::server::encode_safetensors(pictures, {{"request", j.dump()}});
}

Tensor picture(uint64_t seed) {
  Tensor p = raylight::gaussian_noise({3, 24, 40}, seed);
  for (int64_t i = 0; i < p.numel(); ++i) p.f32()[i] = std::tanh(p.f32()[i]);
  return p;
}

}  // namespace

class ServerI2V : public ::testing::Test {
 public:
  static void SetUpTestSuite() {
    dir_ = make_temp_dir("server_i2v");
    raylight::WanConfig c = raylight::wan_tiny_config();
    c.in_dim = 36;
    c.clip_dim = 32;  // the tiny CLIP's width
    auto w = raylight::wan_random_weights(c);
    std::vector<std::pair<std::string, Tensor>> t(w->tensors().begin(), w->tensors().end());
    model_ = dir_ + "/i2v.safetensors";
    raylight::write_safetensors(model_, t, {{"raylight.num_heads", "4"}});
    server_ = new ServerProcess();
    server_->start(dir_, {"--model", model_, "--idle-timeout", "5"});
    ready_ = server_->wait_ready() && wait_model(server_->port());
  }
  static void TearDownTestSuite() {
    if (server_) EXPECT_EQ(server_->stop(), 0) << server_->log();
    delete server_;
    server_ = nullptr;
    std::filesystem::remove_all(dir_);
  }
  void SetUp() override { ASSERT_TRUE(ready_) << "server did not start:\n" << (server_ ? server_->log() : ""); }

 protected:
  static int port() { return server_->port(); }
  static std::string dir_, model_;
  static ServerProcess* server_;
  static bool ready_;
};

std::string ServerI2V::dir_, ServerI2V::model_;
ServerProcess* ServerI2V::server_ = nullptr;
bool ServerI2V::ready_ = false;

TEST_F(ServerI2V, GenerateWithAPictureEqualsSampleWithItsConditioning) {
  const Tensor start = picture(5);
  Reply r = http(port(), "POST", "/v1/generate?wait=1", body(request(), {{"image", start}}), kOctet);
  ASSERT_EQ(r.status, 200) << r.body.substr(0, 400);
  const Tensor latent = latent_of(r.body);
  ASSERT_TRUE(latent.defined());

  // The same job through /v1/sample, its conditioning made here.
  auto backend = raylight::make_cpu_backend();
  auto t5 = raylight::test::load_umt5("tiny", *backend);
  auto vae = raylight::make_latent_codec(raylight::open_store("tiny", raylight::PartKind::LatentCodec), *backend, "tiny");
  auto clip = raylight::make_image_encoder(raylight::open_store(clip_file(), raylight::PartKind::ImageEncoder), *backend,
                                           clip_file());
  raylight::WanConfig c = raylight::wan_tiny_config();
  c.in_dim = 36;
  c.clip_dim = 32;
  const raylight::Conditioning shared = raylight::wan_image_conditioning(c, {start}, {16, 2, 4, 4}, *vae, clip.get());
  Reply direct = http(port(), "POST", "/v1/sample?wait=1",
                      sample_body(kSmall, {{"context", t5->encode_prompt("a red fox")},
                                           {"negative", t5->encode_prompt("")},
                                           {"y", shared.at("y")},
                                           {"clip_fea", shared.at("clip_fea")}}));
  ASSERT_EQ(direct.status, 200) << direct.body.substr(0, 400);
  EXPECT_TRUE(same_bytes(latent, latent_of(direct.body)));

  // Another picture, another video.
  Reply other = http(port(), "POST", "/v1/generate?wait=1", body(request(), {{"image", picture(6)}}), kOctet);
  ASSERT_EQ(other.status, 200) << other.body.substr(0, 400);
  EXPECT_FALSE(same_bytes(latent, latent_of(other.body)));
}

TEST_F(ServerI2V, BadPicturesAndMissingPartsAreRefusedAtOnce) {
  Tensor nan = picture(7).clone();
  nan.f32()[3] = std::nanf("");
  struct Bad {
    std::string body;
    std::vector<std::string> headers;
    const char* says;
  } cases[] = {
      {request().dump(), {}, "is an image-to-video model"},  // JSON without pictures
      {body(request(), {}), kOctet, "carries the pictures"},
      {body(request(), {{"image", picture(1)}, {"last_image", picture(2)}}), kOctet, "first-last-frame"},
      {body(request({{"clip_vision", nullptr}}), {{"image", picture(1)}}), kOctet, "CLIP vision encoder's file"},
      {body(request(), {{"image", raylight::gaussian_noise({4, 8, 8}, 1)}}), kOctet, "[3, H, W]"},
      {body(request(), {{"image", raylight::gaussian_noise({3, 9000, 1}, 1)}}), kOctet, "sides of 1 to 8192"},
      {body(request(), {{"image", nan}}), kOctet, "NaN or infinite"},
      {body(request(), {{"image", picture(1)}, {"mask", picture(1)}}), kOctet, "unknown tensor 'mask'"},
      {"not safetensors", kOctet, "body:"},
      {body(request({{"clip_vision", "/no/clip.safetensors"}}), {{"image", picture(1)}}), kOctet, "clip_vision"},
  };
  for (const Bad& b : cases) {
    Reply r = http(port(), "POST", "/v1/generate", b.body, b.headers);
    EXPECT_EQ(r.status, 400) << b.says << " -> " << r.body;
    EXPECT_NE(r.body.find(b.says), std::string::npos) << r.body;
  }
}
