#include "dist/launcher.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace raylight {

void exec_under_mpirun(int ranks, const std::vector<std::string>& argv) {
  std::vector<std::string> cmd = {"mpirun", "-np", std::to_string(ranks), "--oversubscribe",
                                  "--bind-to", "none"};
  if (geteuid() == 0) {
    // OpenMPI refuses root unless told; containers and cloud images often run as root.
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) fail("cannot find this program's path to start ranks");
  self[n] = '\0';
  cmd.push_back(self);
  cmd.insert(cmd.end(), argv.begin() + 1, argv.end());
  std::vector<char*> args;
  for (auto& s : cmd) args.push_back(s.data());
  args.push_back(nullptr);
  execvp("mpirun", args.data());
  fail("could not start mpirun for ", ranks, " ranks (", std::strerror(errno),
       "); install OpenMPI (openmpi-bin) or run with --ranks 1");
}

}  // namespace raylight
