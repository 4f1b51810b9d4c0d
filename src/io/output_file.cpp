// The output path policy and the staged commit (see output_file.h).
#include "io/output_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/temporaries.h"

namespace raylight {
namespace {

namespace fs = std::filesystem;

// Refuses what the policy refuses; `shown` is the path as the user gave it.
OutputKind kind_of(const std::string& shown, const struct stat& st) {
  if (S_ISREG(st.st_mode)) return OutputKind::Regular;
  if (S_ISFIFO(st.st_mode)) return OutputKind::Pipe;
  fail("output ", shown, " is ", describe_file_type(st.st_mode),
       "; an output must be a new path, a regular file or a pipe",
       S_ISDIR(st.st_mode) ? " (this output is one file: name a file inside the folder)" : "");
}

// Copies the file at `from` into the pipe `to`, which must have a reader.
void copy_into_pipe(const std::string& from, const std::string& to) {
  const int out = ::open(to.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (out < 0 && errno == ENXIO)
    fail("output ", to, " is a pipe that no process is reading from; start the reader first");
  if (out < 0) fail("cannot open the pipe ", to, ": ", std::strerror(errno));
  ::fcntl(out, F_SETFL, ::fcntl(out, F_GETFL) & ~O_NONBLOCK);
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    const int e = errno;
    ::close(out);
    fail("cannot read back ", from, ": ", std::strerror(e));
  }
  // A reader that leaves makes write() fail with EPIPE; SIGPIPE is blocked on this thread
  // meanwhile so it cannot end the process with the temporary still on disk.
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  std::string error;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) { error = std::string("cannot read back ") + from + ": " + std::strerror(errno); break; }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out, buf + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) { error = std::string("cannot write to the pipe ") + to + ": " + std::strerror(errno); break; }
      done += w;
    }
    if (!error.empty()) break;
  }
  ::close(in);
  ::close(out);
  const struct timespec zero {};
  siginfo_t info;
  while (sigtimedwait(&pipe_set, &info, &zero) > 0) {}  // drop a SIGPIPE we caused
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (!error.empty()) fail(error);
}

}  // namespace

std::string describe_file_type(unsigned mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

OutputFile check_output_file(const std::string& path) {
  if (path.empty()) fail("the output path is empty");
  if (path.back() == '/') fail("output ", path, " names a folder; this output is one file");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) fail("cannot check output ", path, ": ", std::strerror(errno));
    const std::string dir = parent_dir(path);
    struct stat dst {};
    if (::stat(dir.c_str(), &dst) != 0 || !S_ISDIR(dst.st_mode))
      fail("cannot write ", path, ": folder ", dir, " does not exist");
    return {path, OutputKind::Absent};
  }
  if (!S_ISLNK(st.st_mode)) return {path, kind_of(path, st)};
  // A symbolic link: the rules apply to what it points to; the link itself stays.
  struct stat target {};
  if (::stat(path.c_str(), &target) != 0)
    fail("output ", path, " is a symbolic link to ",
         errno == ENOENT ? "a missing file" : std::strerror(errno),
         "; create the file or name the target itself");
  const OutputKind kind = kind_of(path, target);
  if (kind == OutputKind::Pipe) return {path, kind};  // /dev/fd/N: open it as named
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (ec) fail("cannot resolve the symbolic link ", path, ": ", ec.message());
  return {real.string(), kind};
}

void write_output_file(const std::string& path,
                       const std::function<void(const std::string& tmp)>& encode) {
  const OutputFile out = check_output_file(path);
  if (out.kind == OutputKind::Pipe) {
    std::error_code ec;
    const std::string stage = (fs::temp_directory_path(ec) / "raylight-pipe").string();
    sweep_stale_temporaries(stage);
    TemporaryPath tmp(staging_path(stage));
    encode(tmp.path());
    check_mapped_files_intact();
    copy_into_pipe(tmp.path(), out.path);
    return;
  }
  sweep_stale_temporaries(out.path);
  TemporaryPath tmp(staging_path(out.path));
  encode(tmp.path());
  sync_file(tmp.path());
  check_mapped_files_intact();  // never commit an output computed from a file cut short
  // Checked again: the path may have changed since check_output_file.
  if (!rename_if_absent(tmp.path(), out.path)) {
    struct stat st {};
    if (::lstat(out.path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      fail("output ", path, " became ", describe_file_type(st.st_mode),
           " while it was being written; it was left as it is");
    rename_or_fail(tmp.path(), out.path);
  }
  tmp.release();
  sync_dir(parent_dir(out.path));
}

void sync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open ", path, " to flush it: ", std::strerror(errno));
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot fsync ", path, ": ", std::strerror(e));
  }
  ::close(fd);
}

void sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

void rename_or_fail(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail("cannot rename ", from, " to ", to, ": ", std::strerror(errno));
}

bool rename_if_absent(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return true;
  if (errno == EEXIST) return false;
  if (errno != EINVAL && errno != ENOSYS)
    fail("cannot rename ", from, " to ", to, ": ", std::strerror(errno));
  // A file system without RENAME_NOREPLACE: check, then rename (a small race remains).
  struct stat st {};
  if (::lstat(to.c_str(), &st) == 0) return false;
  rename_or_fail(from, to);
  return true;
}

}  // namespace raylight
