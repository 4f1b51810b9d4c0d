// Issue 21, ranks: a stopped rank is named as the cause even by ranks that only wait for
// its neighbours, and a stopped mpirun cannot hold the ranks in MPI_Finalize forever
// (--timeout covers shutdown). CPU ranks through the real `raylight --ranks N`.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>

#include "cli_runner.h"

namespace {

class RankFaults : public CliTest {
 protected:
  // Shell lines that set $victim to the pid of world rank `rank` of the job writing `out`
  // (waiting up to 30 s for it to start), or of mpirun itself for rank -1.
  static std::string find_victim(const std::string& out, int rank) {
    const std::string test =
        rank < 0 ? "tr '\\0' ' ' < /proc/$p/cmdline | grep -q '^mpirun '"
                 : "tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=" +
                       std::to_string(rank);
    return "victim=; for i in $(seq 150); do for p in $(pgrep -f -- '--out " + out + "'); do if " +
           test + "; then victim=$p; fi; done; [ -n \"$victim\" ] && break; sleep 0.2; done; ";
  }
  // Whether any process of the job writing `out` still runs ("[.]" keeps pgrep's own shell
  // from matching).
  static bool any_left(const std::string& out) {
    std::string pattern = out;
    pattern.replace(pattern.rfind('.'), 1, "[.]");
    return std::system(("pgrep -f -- '" + pattern + "' >/dev/null").c_str()) == 0;
  }
  static void kill_all(const std::string& out) {
    std::string pattern = out;
    pattern.replace(pattern.rfind('.'), 1, "[.]");
    (void)!std::system(("pkill -CONT -f -- '" + pattern + "'; pkill -KILL -f -- '" + pattern + "'").c_str());
  }
};

}  // namespace

TEST_F(RankFaults, TheStoppedRankIsNamedNotItsNeighbour) {
  // In a ring of 4 every rank waits for the one before it, so ranks 2, 3 and 0 all starve
  // when rank 1 stops; whichever times out first must still name rank 1.
  const std::string out = path("ring.safetensors");
  const std::string job = binary() +
                          " sample --width 256 --height 256 --frames 9 --steps 2000 --ranks 4 --ring 4"
                          " --timeout 8 --out " + out;
  // Stopped past MPI start-up (rank 0 printed the model line): on a loaded machine start-up
  // can outlast --timeout, and then the start-up check, not the ring, would time out.
  const int rc = shell(job + " & pid=$!; " + find_victim(out, 1) +
                       "for i in $(seq 600); do grep -q '^model:' " + path("stderr.txt") +
                       " && break; sleep 0.1; done; sleep 1; kill -STOP $victim; wait $pid");
  kill_all(out);
  EXPECT_EQ(rc, 4) << err_;
  EXPECT_NE(err_.find("timed out after 8 s"), std::string::npos) << err_;
  EXPECT_NE(err_.find("rank 1 does not answer"), std::string::npos) << err_;
  // No message puts the blame on a rank that runs.
  EXPECT_FALSE(std::regex_search(err_, std::regex("rank [023] does not answer"))) << err_;
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(any_left(out));
}

TEST_F(RankFaults, AStoppedMpirunDoesNotHoldTheRanksInShutdownForever) {
  // The ranks finish their work while mpirun is stopped; MPI_Finalize then needs mpirun, and
  // --timeout bounds that wait too.
  const std::string out = path("fin.safetensors");
  const std::string job = binary() + " sample --steps 40 --ranks 2 --ulysses 2 --timeout 4 --out " + out;
  // mpirun is stopped once the ranks are past start-up (rank 0 printed the model line, which
  // mpirun forwarded); a rank that has exited but is not reaped by the stopped mpirun is a
  // zombie ("Z"), which counts as gone.
  const std::string gone = "st=$(awk '{print $3}' /proc/$rank1/stat 2>/dev/null); [ -z \"$st\" -o \"$st\" = Z ]";
  const int rc = shell(job + " & pid=$!; " + find_victim(out, 1) + "rank1=$victim; " +
                       "for i in $(seq 300); do grep -q '^model:' " + path("stderr.txt") +
                       " && break; sleep 0.1; done; " + find_victim(out, -1) + "kill -STOP $victim; " +
                       "for i in $(seq 300); do " + gone + " && break; sleep 0.2; done; " +
                       gone + " || echo 'ranks still running' >&2; kill -CONT $victim; wait $pid");
  kill_all(out);
  EXPECT_EQ(err_.find("ranks still running"), std::string::npos) << err_;
  // The ranks' own words travel through mpirun, which may exit before it forwards them; its
  // exit code says the shutdown timed out.
  EXPECT_EQ(rc, 4) << err_;
  EXPECT_FALSE(any_left(out));
}
