// Signal flag for a clean shutdown (see stop_signal.h).
#include "server/stop_signal.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace raylight::server {
namespace {

volatile std::sig_atomic_t g_stop = 0;
char g_unlink[4096] = "";

extern "C" void on_stop_signal(int) {
  g_stop = 1;
  if (g_unlink[0]) ::unlink(g_unlink);
}

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
}

bool stop_signalled() { return g_stop != 0; }

void unlink_on_stop_signal(const std::string& path) {
  // Written before any signal can read it (set up once, at start), or emptied first.
  g_unlink[0] = '\0';
  if (path.size() < sizeof g_unlink) std::memcpy(g_unlink, path.c_str(), path.size() + 1);
}

}  // namespace raylight::server
