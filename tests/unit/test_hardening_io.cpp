// Issue 21, files: every output writer applies one path policy (io/output_file.h), staged
// temporaries never outlive a run (io/temporaries.h), a checkpoint truncated while mapped is
// an Error instead of SIGBUS (io/mapping_faults.h), and safetensors headers with duplicate
// keys are refused. Each test makes its own FIFO, device node and links in a private temporary
// folder (CI runs as root: /dev is never touched).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "io/output_file.h"
#include "io/safetensors.h"
#include "io/temporaries.h"
#include "io/video/video_writer.h"
#include "parallel/checkpoint_weights.h"

namespace fs = std::filesystem;
using namespace raylight;

namespace {

class HardeningIo : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("raylight_hio_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    return out;
  }
  void expect_no_temporaries() const {
    for (const auto& name : list()) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
  static std::string message_of(const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
  static std::string read(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  fs::path dir_;
};

Tensor small() { return Tensor::from_vector({2, 2}, {1, 2, 3, 4}); }

// A one-frame RGB video in [-1, 1].
Tensor tiny_video(int64_t frames) { return Tensor::zeros({3, frames, 8, 8}); }

}  // namespace

TEST_F(HardeningIo, OutputsThatAreNotFilesAreRefusedAndLeftAsTheyAre) {
  struct Case {
    std::string name;
    const char* says;
  };
  std::vector<Case> cases;
  for (const std::string ext : {".safetensors", ".png", ".mp4", ".webp"}) {
    ASSERT_EQ(::mknod(path("node" + ext).c_str(), S_IFCHR | 0600, makedev(1, 3)), 0) << std::strerror(errno);
    ASSERT_EQ(::mkfifo(path("fifo" + ext).c_str(), 0600), 0);
    fs::create_directory(path("folder" + ext));
    fs::create_symlink("missing" + ext, path("dangling" + ext));
    fs::create_symlink("node" + ext, path("link_to_node" + ext));
    cases.push_back({"node" + ext, "is a character device"});
    cases.push_back({"folder" + ext, "is a folder"});
    cases.push_back({"dangling" + ext, "symbolic link to a missing file"});
    cases.push_back({"link_to_node" + ext, "is a character device"});
    cases.push_back({"fifo" + ext, "no process is reading"});
  }
  for (const Case& c : cases) {
    const std::string m = c.name.find(".safetensors") != std::string::npos
                              ? message_of([&] { write_safetensors(path(c.name), {{"x", small()}}); })
                              : message_of([&] { write_video(path(c.name), tiny_video(1)); });
    EXPECT_NE(m.find(c.says), std::string::npos) << c.name << ": " << m;
  }
  for (const std::string ext : {".safetensors", ".png", ".mp4", ".webp"}) {
    struct stat st {};
    ASSERT_EQ(::lstat(path("node" + ext).c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    ASSERT_EQ(::lstat(path("fifo" + ext).c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
    EXPECT_TRUE(fs::is_directory(path("folder" + ext)));
    EXPECT_TRUE(fs::is_empty(path("folder" + ext)));
    EXPECT_TRUE(fs::is_symlink(path("dangling" + ext)));
    EXPECT_FALSE(fs::exists(path("missing" + ext)));
    EXPECT_TRUE(fs::is_symlink(path("link_to_node" + ext)));
  }
  expect_no_temporaries();
  // A missing folder and an empty path are named too.
  EXPECT_NE(message_of([&] { write_safetensors(path("nope/x.safetensors"), {{"x", small()}}); })
                .find("does not exist"),
            std::string::npos);
  EXPECT_NE(message_of([&] { write_safetensors("", {{"x", small()}}); }).find("empty"), std::string::npos);
}

TEST_F(HardeningIo, ASymlinkIsFollowedAndStaysALink) {
  write_safetensors(path("target.safetensors"), {{"x", Tensor::zeros({1})}});
  fs::create_symlink("target.safetensors", path("link.safetensors"));
  write_safetensors(path("link.safetensors"), {{"x", small()}});
  EXPECT_TRUE(fs::is_symlink(path("link.safetensors")));
  EXPECT_EQ(SafetensorsFile::open(path("target.safetensors"))->info("x").shape, (Shape{2, 2}));
  expect_no_temporaries();
}

TEST_F(HardeningIo, APipeWithAReaderGetsTheWholeFile) {
  ASSERT_EQ(::mkfifo(path("fifo").c_str(), 0600), 0);
  std::string received;
  std::thread reader([&] { received = read(path("fifo")); });
  // The reader may not have opened yet: retry while the error says so.
  for (int i = 0; i < 200; ++i) {
    const std::string m = message_of([&] { write_safetensors(path("fifo"), {{"x", small()}}); });
    if (m == "(no error)") break;
    ASSERT_NE(m.find("no process is reading"), std::string::npos) << m;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  reader.join();
  write_safetensors(path("copy.safetensors"), {{"x", small()}});
  EXPECT_EQ(received, read(path("copy.safetensors")));
  struct stat st {};
  ASSERT_EQ(::lstat(path("fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  expect_no_temporaries();
}

TEST_F(HardeningIo, DuplicateHeaderKeysAreRefused) {
  auto write_raw = [&](const std::string& name, const std::string& header, size_t data) {
    std::ofstream f(path(name), std::ios::binary);
    uint64_t n = header.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header << std::string(data, '\0');
  };
  write_raw("dup.safetensors",
            R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
            R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
            8);
  EXPECT_NE(message_of([&] { SafetensorsFile::open(path("dup.safetensors")); }).find("names 'a' twice"),
            std::string::npos);
  write_raw("dupmeta.safetensors",
            R"({"__metadata__":{"k":"1","k":"2"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_NE(message_of([&] { SafetensorsFile::open(path("dupmeta.safetensors")); }).find("names 'k' twice"),
            std::string::npos);
  // The same key in two different objects is fine.
  write_raw("ok.safetensors", R"({"__metadata__":{"a":"x"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_EQ(SafetensorsFile::open(path("ok.safetensors"))->metadata().at("a"), "x");
}

TEST_F(HardeningIo, ACheckpointTruncatedWhileMappedIsAnErrorNotSigbus) {
  // BF16 weights: the CPU backend reads (dequantises) them in get().
  const int64_t n = 1 << 20;  // 2 MiB per tensor
  write_safetensors(path("ck.safetensors"),
                    {{"a", Tensor::zeros({n}).to_dtype(DType::BF16)}, {"b", Tensor::zeros({n}).to_dtype(DType::BF16)}});
  auto backend = make_cpu_backend();
  CheckpointWeights w(Checkpoint::open(path("ck.safetensors")));
  w.bind(*backend);
  EXPECT_EQ(w.get("a").numel(), n);
  ASSERT_EQ(::truncate(path("ck.safetensors").c_str(), 1000000), 0);
  // "b" lies wholly past the new end: reading it would have been SIGBUS.
  const std::string m = message_of([&] { w.get("b"); });
  EXPECT_NE(m.find("ck.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("cut short while in use"), std::string::npos) << m;
  EXPECT_NE(m.find("1000000 bytes now"), std::string::npos) << m;
  // From then on every use fails, and no output is made from it.
  EXPECT_NE(message_of([&] { w.get("a"); }).find("cut short"), std::string::npos);
  EXPECT_NE(message_of([&] { write_safetensors(path("out.safetensors"), {{"x", small()}}); }).find("cut short"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path("out.safetensors")));
  expect_no_temporaries();
}

TEST_F(HardeningIo, ASigbusOutsideAnyCheckpointStillEndsTheProcess) {
  // The handler must not swallow faults it does not own: a child maps a file, truncates it
  // and reads past the end without registering the mapping.
  std::ofstream(path("plain"), std::ios::binary) << std::string(1 << 16, 'x');
  // Registering some other mapping installs the handler first.
  write_safetensors(path("ck.safetensors"), {{"x", small()}});
  auto keep = SafetensorsFile::open(path("ck.safetensors"));
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int fd = ::open(path("plain").c_str(), O_RDONLY);
    auto* p = static_cast<volatile const char*>(::mmap(nullptr, 1 << 16, PROT_READ, MAP_PRIVATE, fd, 0));
    if (::truncate(path("plain").c_str(), 0) != 0) ::_exit(10);
    char c = p[40000];
    ::_exit(c == 'x' ? 11 : 12);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGBUS);
}

TEST_F(HardeningIo, ASignalDuringAWriteRemovesTheTemporary) {
  // A child stages a file and a folder, then is ended by SIGTERM / SIGINT before committing.
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      install_temporary_cleanup();
      TemporaryPath file(staging_path(path("out.safetensors")));
      std::ofstream(file.path()) << "partial";
      TemporaryPath folder(staging_path(path("frames")));
      fs::create_directory(folder.path());
      for (int i = 0; i < 3; ++i) std::ofstream(folder.path() + "/frame_0000" + std::to_string(i) + ".png") << i;
      (void)!::write(ready[1], "x", 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    EXPECT_EQ(list().size(), 2u);
    ::kill(pid, sig);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), sig);  // the signal still ends the process as before
    EXPECT_TRUE(list().empty()) << list()[0];
  }
}

TEST_F(HardeningIo, StaleTemporariesOfDeadProcessesAreSwept) {
  // A pid that ran and ended: a child we waited for.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::string stale = path("out.safetensors.tmp-" + std::to_string(dead));
  const std::string live = path("out.safetensors.tmp-" + std::to_string(::getppid()));
  std::ofstream(stale) << "left by kill -9";
  std::ofstream(live) << "a running writer";
  fs::create_directory(path("frames.tmp-" + std::to_string(dead)));
  std::ofstream(path("frames.tmp-" + std::to_string(dead)) + "/frame_00000.png") << "x";
  std::ofstream(path("out.safetensors.tmp-notapid")) << "not ours";
  write_safetensors(path("out.safetensors"), {{"x", small()}});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(path("out.safetensors.tmp-notapid")));
  write_video(path("frames/"), tiny_video(2));
  EXPECT_FALSE(fs::exists(path("frames.tmp-" + std::to_string(dead))));
  EXPECT_TRUE(fs::exists(path("frames/frame_00001.png")));
}

TEST_F(HardeningIo, AFrameFolderIsReplacedAsAWholeOrRefused) {
  write_video(path("frames/"), tiny_video(3));
  const auto inode = [&](const std::string& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_ino;
  };
  const auto before = inode(path("frames"));
  write_video(path("frames/"), tiny_video(2));  // a new folder swapped in: no frame 2 left
  EXPECT_NE(inode(path("frames")), before);
  EXPECT_TRUE(fs::exists(path("frames/frame_00001.png")));
  EXPECT_FALSE(fs::exists(path("frames/frame_00002.png")));
  expect_no_temporaries();
  // A folder holding anything else is the user's: refused, untouched.
  std::ofstream(path("frames/notes.txt")) << "mine";
  EXPECT_NE(message_of([&] { write_video(path("frames/"), tiny_video(2)); }).find("holds 'notes.txt'"),
            std::string::npos);
  EXPECT_EQ(read(path("frames/notes.txt")), "mine");
  EXPECT_TRUE(fs::exists(path("frames/frame_00001.png")));
  expect_no_temporaries();
  // A link to a folder writes the folder it points to; the link stays.
  fs::create_directory(path("real"));
  fs::create_symlink("real", path("linked"));
  write_video(path("linked/"), tiny_video(2));
  EXPECT_TRUE(fs::is_symlink(path("linked")));
  EXPECT_TRUE(fs::exists(path("real/frame_00001.png")));
  // A device where a folder is expected is refused.
  ASSERT_EQ(::mknod(path("node").c_str(), S_IFCHR | 0600, makedev(1, 3)), 0);
  EXPECT_NE(message_of([&] { write_video(path("node/"), tiny_video(2)); }).find("character device"),
            std::string::npos);
}

TEST_F(HardeningIo, ConcurrentWritersIntoOneFrameFolderNeverMix) {
  // Two writers with different frame counts and contents race into one folder; afterwards
  // the folder holds exactly one writer's complete output.
  for (int trial = 0; trial < 6; ++trial) {
    Tensor a = Tensor::zeros({3, 4, 8, 8});
    Tensor b = Tensor::zeros({3, 6, 8, 8});
    for (int64_t i = 0; i < b.numel(); ++i) b.f32()[i] = 0.5f;
    // Two processes, as two `generate` runs are (staging names hold the pid).
    pid_t pids[2];
    for (int w = 0; w < 2; ++w) {
      pids[w] = ::fork();
      ASSERT_GE(pids[w], 0);
      if (pids[w] == 0) {
        try {
          write_video(path("mix/"), w ? b : a);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "writer %d: %s\n", w, e.what());  // the parent's failure says why
          ::_exit(1);
        } catch (...) {
          ::_exit(1);
        }
        ::_exit(0);
      }
    }
    for (pid_t pid : pids) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    size_t count = 0;
    std::set<std::string> contents;
    for (const auto& e : fs::directory_iterator(path("mix"))) {
      ++count;
      contents.insert(read(e.path().string()));
    }
    EXPECT_TRUE(count == 4 || count == 6) << count;
    EXPECT_EQ(contents.size(), 1u) << "frames of two runs mixed in trial " << trial;
    expect_no_temporaries();
  }
}
