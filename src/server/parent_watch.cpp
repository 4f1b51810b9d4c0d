// The parent watch (see parent_watch.h): a pidfd polls readable once its process exits.
#include "server/parent_watch.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.h"

namespace raylight::server {

ParentWatch::ParentWatch(int pid) : pid_(pid) {
  if (pid_ == 0) return;
  if (pid_ < 0) fail("--parent-pid must be a process id, got ", pid_);
#ifdef SYS_pidfd_open
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (pidfd_ < 0 && errno == ESRCH) fail("--parent-pid ", pid_, ": no such process (it has already ended?)");
#endif
  if (pidfd_ < 0 && ::kill(pid_, 0) != 0 && errno == ESRCH)
    fail("--parent-pid ", pid_, ": no such process (it has already ended?)");
}

ParentWatch::~ParentWatch() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

bool ParentWatch::gone() const {
  if (pid_ == 0) return false;
  if (pidfd_ >= 0) {
    pollfd p{pidfd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;
  }
  return ::kill(pid_, 0) != 0 && errno == ESRCH;
}

}  // namespace raylight::server
