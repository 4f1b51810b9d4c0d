// The mapping registry and its SIGBUS handler (see mapping_faults.h). The handler reads only
// atomics and calls only mmap, which is a plain system call on Linux.
#include "io/mapping_faults.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

namespace raylight {
namespace {

constexpr int kSlots = 256;

struct Mapping {
  std::atomic<uintptr_t> base{0};  // 0: free slot
  std::atomic<size_t> size{0};
  std::atomic<bool> faulted{false};
  std::string path;                // guarded by g_mutex; never read by the handler
};
Mapping g_maps[kSlots];
std::mutex g_mutex;
struct sigaction g_previous {};

extern "C" void on_sigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(info->si_addr);
  for (Mapping& m : g_maps) {
    const uintptr_t base = m.base.load(std::memory_order_acquire);
    if (base == 0 || at < base || at - base >= m.size.load(std::memory_order_acquire)) continue;
    const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    void* zeros = ::mmap(reinterpret_cast<void*>(at / page * page), page, PROT_READ,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (zeros == MAP_FAILED) break;
    m.faulted.store(true, std::memory_order_release);
    return;  // the read is retried and now sees zeros
  }
  // Not one of ours: what would have happened without us.
  if ((g_previous.sa_flags & SA_SIGINFO) && g_previous.sa_sigaction) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN &&
      g_previous.sa_handler != nullptr) {
    g_previous.sa_handler(sig);
    return;
  }
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(SIGBUS, &dfl, nullptr);  // the faulting read runs again and ends the process
}

void install_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, &g_previous);
  });
}

}  // namespace

int register_mapping(const void* base, size_t size, const std::string& path) {
  install_handler();
  std::lock_guard<std::mutex> lock(g_mutex);
  for (int i = 0; i < kSlots; ++i) {
    Mapping& m = g_maps[i];
    if (m.base.load() != 0) continue;
    m.path = path;
    m.faulted.store(false);
    m.size.store(size, std::memory_order_release);
    m.base.store(reinterpret_cast<uintptr_t>(base), std::memory_order_release);
    return i;
  }
  return -1;
}

void unregister_mapping(int slot) {
  if (slot < 0) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_maps[slot].base.store(0, std::memory_order_release);
}

bool mapping_faulted(int slot) {
  return slot >= 0 && g_maps[slot].faulted.load(std::memory_order_acquire);
}

std::string first_faulted_mapping() {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const Mapping& m : g_maps)
    if (m.base.load() != 0 && m.faulted.load()) return m.path;
  return "";
}

}  // namespace raylight
