// Temporary files and folders that must not outlive the process that made them.
//
// Every output is staged under "<target>.tmp-<pid>" and renamed into place, so an
// interrupted run must remove its staging path. Three cases:
//   - an Error or exception: the RAII owner (TemporaryPath) removes it while unwinding;
//   - SIGINT, SIGTERM, SIGHUP: the handler installed by install_temporary_cleanup() removes
//     every registered path with system calls only (async-signal-safe: open, getdents64,
//     unlinkat, rmdir), then lets the signal end the process as it would have;
//   - SIGKILL or a power cut leave it behind: the next writer of the same target removes
//     "<target>.tmp-<pid>" entries whose pid runs no process on this machine
//     (sweep_stale_temporaries).
// The registry is a fixed array of slots with atomic states, because a signal can arrive
// while a slot is being filled.
#pragma once

#include <string>

namespace raylight {

// "<path>.tmp-<pid>": the staging name for `path` (a file or a folder).
std::string staging_path(const std::string& path);

// Owns a staging path: registered for signal cleanup while it lives; removed (file or folder
// with its files) when destroyed unless release() was called, e.g. after it was renamed
// into place. Errors while removing are ignored: this runs while unwinding.
class TemporaryPath {
 public:
  explicit TemporaryPath(std::string path);
  ~TemporaryPath();
  TemporaryPath(const TemporaryPath&) = delete;
  TemporaryPath& operator=(const TemporaryPath&) = delete;
  const std::string& path() const { return path_; }
  // The path is no longer ours to remove (renamed into place).
  void release();

 private:
  std::string path_;
  int slot_ = -1;
  bool released_ = false;
};

// Installs the SIGINT/SIGTERM/SIGHUP handlers that remove registered temporaries before the
// signal ends the process. Idempotent. A command that handles these signals itself (the
// server's clean stop) installs its own handlers afterwards and cleans up by unwinding.
void install_temporary_cleanup();

// Removes "<target>.tmp-<pid>" siblings of `target` left by processes that no longer run on
// this machine. Best effort; never throws.
void sweep_stale_temporaries(const std::string& target);

}  // namespace raylight
