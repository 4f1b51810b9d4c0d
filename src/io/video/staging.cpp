// Temporary names, cleanup and the fsync + rename commit shared by every video format.
#include "io/video/staging.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace raylight::video {

std::string staging_path(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid());
}

StagedPath::~StagedPath() {
  if (released_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
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

void write_file_atomically(const std::string& path,
                           const std::function<void(const std::string& tmp)>& encode) {
  StagedPath tmp(staging_path(path));
  encode(tmp.path());
  sync_file(tmp.path());
  rename_or_fail(tmp.path(), path);
  tmp.release();
  sync_dir(parent_dir(path));
}

}  // namespace raylight::video
