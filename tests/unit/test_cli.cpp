// The raylight command as users run it: defaults that work, deterministic output, and
// clear errors that leave no output file behind.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

class Cli : public CliTest {
 protected:
  std::string bytes(const std::string& name) const { return read(path(name)); }
};

}  // namespace

TEST_F(Cli, SampleTinyRunsWithDefaultsAndIsDeterministic) {
  ASSERT_EQ(run("sample --model tiny --steps 3 --out " + path("a.safetensors")), 0) << err_;
  ASSERT_EQ(run("sample --steps 3 --out " + path("b.safetensors")), 0) << err_;
  ASSERT_EQ(run("sample --steps 3 --seed 1 --out " + path("c.safetensors")), 0) << err_;
  EXPECT_EQ(bytes("a.safetensors"), bytes("b.safetensors"));
  EXPECT_NE(bytes("a.safetensors"), bytes("c.safetensors"));
  auto f = SafetensorsFile::open(path("a.safetensors"));
  Tensor latent = f->tensor("latent").to_f32();
  EXPECT_EQ(latent.shape(), (Shape{16, 3, 16, 16}));
  for (int64_t i = 0; i < latent.numel(); ++i) ASSERT_TRUE(std::isfinite(latent.f32()[i]));
  EXPECT_NE(err_.find("step 3/3"), std::string::npos) << err_;
}

TEST_F(Cli, EverySamplerAndSizeOptionWorks) {
  for (const char* s : {"euler", "unipc", "dpmpp2m"}) {
    ASSERT_EQ(run(std::string("sample --sampler ") + s +
                  " --steps 2 --width 64 --height 32 --frames 5 --cfg 1 --out " + path("o.safetensors")),
              0) << s << ": " << err_;
    EXPECT_EQ(SafetensorsFile::open(path("o.safetensors"))->info("latent").shape, (Shape{16, 2, 4, 8}));
  }
}

TEST_F(Cli, BadOptionsFailWithAMessageAndNoOutput) {
  const std::string out = " --out " + path("x.safetensors");
  EXPECT_EQ(run("sample --width 100" + out), 2);
  EXPECT_NE(err_.find("multiples of 16"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --frames 8" + out), 2);
  EXPECT_NE(err_.find("4k+1"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --sampler heun" + out), 2);
  EXPECT_NE(err_.find("unknown sampler 'heun'"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --steps abc" + out), 2);
  EXPECT_NE(err_.find("--steps expects an integer"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --bogus 1" + out), 2);
  EXPECT_NE(err_.find("unknown option --bogus"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --model " + path("missing.safetensors") + " --context " + path("c.safetensors") + out), 2);
  EXPECT_NE(err_.find("does not exist"), std::string::npos) << err_;
  EXPECT_EQ(run("frobnicate"), 2);
  EXPECT_FALSE(fs::exists(path("x.safetensors")));
  EXPECT_EQ(run("sample --steps 1 --out " + path("no_such_dir/x.safetensors")), 2);
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename(), "stderr.txt") << "left behind: " << e.path();
}

TEST_F(Cli, SampleReadsContextFilesAndChecksTheirShape) {
  write_safetensors(path("ctx.safetensors"), {{"context", Tensor::zeros({5, 64})}});
  write_safetensors(path("bad.safetensors"), {{"context", Tensor::zeros({5, 63})}});
  write_safetensors(path("noname.safetensors"), {{"text", Tensor::zeros({5, 64})}});
  const std::string out = " --steps 1 --out " + path("o.safetensors");
  EXPECT_EQ(run("sample --context " + path("ctx.safetensors") + " --negative " + path("ctx.safetensors") + out), 0) << err_;
  EXPECT_EQ(run("sample --context " + path("bad.safetensors") + out), 2);
  EXPECT_NE(err_.find("[5, 63]"), std::string::npos) << err_;
  EXPECT_EQ(run("sample --context " + path("noname.safetensors") + out), 2);
  EXPECT_NE(err_.find("no tensor named 'context'"), std::string::npos) << err_;
}

TEST_F(Cli, InspectDescribesAWanCheckpoint) {
  const std::string log = path("inspect.txt");
  std::string cmd = std::string(RAYLIGHT_BINARY) + " inspect " + RAYLIGHT_FIXTURE_DIR +
                    "/wan_tiny_t2v_scaled_fp8.safetensors > " + log;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  EXPECT_NE(text.find("family:      Wan 2.1 DiT"), std::string::npos) << text;
  EXPECT_NE(text.find("Wan2.1 T2V custom (dim 64, 2 layers)"), std::string::npos) << text;
  EXPECT_NE(text.find("F8_E4M3"), std::string::npos) << text;
  EXPECT_NE(text.find("scaled fp8:  yes"), std::string::npos) << text;
  EXPECT_NE(text.find("model.diffusion_model."), std::string::npos) << text;
  EXPECT_EQ(run("inspect " + path("nope.safetensors")), 2);
  EXPECT_NE(err_.find("does not exist"), std::string::npos) << err_;
}
