// A test fixture that runs the real `raylight` binary in a private temporary folder and
// keeps its exit code and stderr, for tests of the command as users run it.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

class CliTest : public ::testing::Test {
 public:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("raylight_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs raylight with `args`; returns the exit code and keeps stderr in err_.
  int run(const std::string& args) { return shell(binary() + " " + args); }
  // Runs a shell command line with stderr kept in err_ (stdout dropped).
  int shell(const std::string& line) {
    const std::string log = path("stderr.txt");
    int rc = std::system(("(" + line + ") >/dev/null 2>" + log).c_str());
    err_ = read(log);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
  }
  // RAYLIGHT_TEST_BINARY runs the same tests against another build (e.g. to show that a
  // regression test fails on an older one).
  static std::string binary() {
    const char* other = std::getenv("RAYLIGHT_TEST_BINARY");
    return other && *other ? other : RAYLIGHT_BINARY;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path dir_;
  std::string err_;
};
