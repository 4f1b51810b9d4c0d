// Issue 21, item 3 for the server: a checkpoint truncated on disk while `raylight serve`
// has it mapped used to kill the server with SIGBUS on its next job (leaving its port file
// behind). Now the job fails with a message naming the file and the server keeps serving.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "test_server_support.h"

using namespace server_test;

namespace {

class ServerHardening : public ::testing::Test {
 public:
  void SetUp() override { dir_ = make_temp_dir("server_hard"); }
  void TearDown() override {
    server_.kill_all();
    EXPECT_TRUE(server_.survivors().empty());
    std::filesystem::remove_all(dir_);
  }

 protected:
  std::string dir_;
  ServerProcess server_;
};

}  // namespace

TEST_F(ServerHardening, ACheckpointTruncatedWhileServedFailsTheJobNotTheServer) {
  const std::string ck = dir_ + "/ck.safetensors";
  std::filesystem::copy_file(std::string(RAYLIGHT_FIXTURE_DIR) + "/wan_tiny_t2v.safetensors", ck);
  server_.start(dir_, {"--model", ck});
  ASSERT_TRUE(server_.wait_ready()) << server_.log();
  ASSERT_TRUE(wait_model(server_.port())) << server_.log();
  // The fixture's text width is 32.
  raylight::Tensor ctx = raylight::Tensor::zeros({4, 32});
  for (int64_t i = 0; i < ctx.numel(); ++i) ctx.f32()[i] = 0.01f * static_cast<float>(i % 7);
  const std::string body = sample_body({{"width", 32}, {"height", 32}, {"frames", 1}, {"steps", 1}, {"cfg", 1}},
                                       {{"context", ctx}});
  Reply ok = http(server_.port(), "POST", "/v1/sample?wait=1", body);
  ASSERT_EQ(ok.status, 200) << ok.body.substr(0, 300);

  // Past the header, into the weights (the CPU backend reads them from the mapping on use).
  ASSERT_EQ(::truncate(ck.c_str(), 16384), 0);
  for (int attempt = 0; attempt < 2; ++attempt) {
    Reply bad = http(server_.port(), "POST", "/v1/sample?wait=1", body);
    EXPECT_GE(bad.status, 400) << bad.body.substr(0, 300);
    EXPECT_NE(bad.body.find("cut short while in use"), std::string::npos) << bad.status << " " << bad.body;
    EXPECT_NE(bad.body.find("ck.safetensors"), std::string::npos) << bad.body;
    EXPECT_EQ(http(server_.port(), "GET", "/v1/health").status, 200) << server_.log();
  }
  EXPECT_TRUE(alive(server_.pid()));
  EXPECT_EQ(http(server_.port(), "POST", "/v1/shutdown").status, 200);
  EXPECT_EQ(server_.wait_exit(30), 0) << server_.log();
  EXPECT_FALSE(std::filesystem::exists(server_.port_file()));
}
