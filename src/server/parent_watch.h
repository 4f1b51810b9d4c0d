// `raylight serve --parent-pid PID`: the server lives only as long as the process that
// started it. The ComfyUI node pack starts its own server and passes its pid; when ComfyUI
// ends in any way - SIGTERM or SIGKILL, where Python's atexit never runs - the server stops
// as cleanly as on POST /v1/shutdown instead of keeping the model loaded on an orphaned port.
// (A parent-death signal would fire when the thread that started the server ends, and it
// would reach mpirun rather than rank 0; a pidfd names the process itself, race-free.)
#pragma once

namespace raylight::server {

class ParentWatch {
 public:
  // pid 0 watches nothing. An Error when `pid` is not a running process.
  explicit ParentWatch(int pid);
  ~ParentWatch();
  ParentWatch(const ParentWatch&) = delete;
  ParentWatch& operator=(const ParentWatch&) = delete;

  // Whether the watched process has ended (never blocks; any thread may ask).
  bool gone() const;
  int pid() const { return pid_; }

 private:
  int pid_ = 0;
  int pidfd_ = -1;  // -1 without pidfd_open (kernels before 5.3): kill(pid, 0) instead
};

}  // namespace raylight::server
