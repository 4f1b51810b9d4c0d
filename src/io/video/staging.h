// Never leaving a half-written video: encoders write to a temporary name next to the
// output and the result is renamed into place only once it is complete. The helpers
// here name the temporaries, remove them on every failure path (RAII, so exceptions
// from any library wrapper clean up too) and perform the fsync + rename commit.
#pragma once

#include <functional>
#include <string>

namespace raylight::video {

// "<path>.tmp-<pid>": the temporary name for `path` (a file or a directory).
std::string staging_path(const std::string& path);

// Removes `path` (a file, or a directory with its contents) when destroyed, unless
// release() was called. Errors while removing are ignored: this runs while unwinding.
class StagedPath {
 public:
  explicit StagedPath(std::string path) : path_(std::move(path)) {}
  ~StagedPath();
  StagedPath(const StagedPath&) = delete;
  StagedPath& operator=(const StagedPath&) = delete;
  const std::string& path() const { return path_; }
  void release() { released_ = true; }

 private:
  std::string path_;
  bool released_ = false;
};

// Flushes the file `path` to disk (Error on failure).
void sync_file(const std::string& path);
// Best effort: makes renames inside directory `dir` durable.
void sync_dir(const std::string& dir);
// The directory holding `path` ("." when it has no '/').
std::string parent_dir(const std::string& path);
// rename(2) with an Error naming both paths.
void rename_or_fail(const std::string& from, const std::string& to);

// Calls encode(tmp) with tmp = staging_path(path), then fsyncs tmp and renames it onto
// `path`. On any exception tmp is removed and the exception propagates.
void write_file_atomically(const std::string& path,
                           const std::function<void(const std::string& tmp)>& encode);

}  // namespace raylight::video
