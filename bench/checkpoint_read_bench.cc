// The checkpoint read at resume under mpirun: every rank reading the shared file, against rank 0
// reading it once and broadcasting its bytes over the control plane (LoadCheckpointShared). Each
// way runs `repeats` times; rank 0 prints one line per way with the slowest rank's time (from a
// barrier to the bytes in memory on every rank), best and median. With --drop-caches rank 0
// empties the page cache before each read (root only), as on a resume after a restart on other
// nodes; without it the file is in the page cache from the second read on.
//   mpirun -np R build/bench/checkpoint_read_bench FILE [--repeats 5] [--drop-caches]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/atomic_file.h"

namespace trainguard {
namespace {

using Clock = std::chrono::steady_clock;

// Empties the page cache; false when this process may not (not root, or a container).
bool DropCaches() {
  std::ofstream drop("/proc/sys/vm/drop_caches");
  drop << "3\n";
  drop.flush();
  return static_cast<bool>(drop);
}

// The slowest rank's seconds since `t0`.
double Slowest(ControlPlane& control, Clock::time_point t0) {
  std::vector<int64_t> micros{std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0).count()};
  control.AllReduceMax(micros);
  return static_cast<double>(micros[0]) / 1e6;
}

// One read as `way` does it: "each" (every rank reads the file) or "shared" (rank 0 reads it and
// broadcasts the bytes). Returns the slowest rank's seconds; checks every rank got every byte.
double ReadOnce(ControlPlane& control, const std::string& way, const std::string& path, bool drop, size_t size) {
  if (drop && control.rank() == 0 && !DropCaches()) {
    std::fprintf(stderr, "cannot write /proc/sys/vm/drop_caches: run as root outside a container, or without it\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const auto t0 = Clock::now();
  std::string bytes;
  if (way == "each" || control.rank() == 0) bytes = ReadWholeFile(path);
  if (way == "shared") control.Broadcast(bytes, 0);
  const double seconds = Slowest(control, t0);
  if (bytes.size() != size) MPI_Abort(MPI_COMM_WORLD, 3);
  return seconds;
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  using namespace trainguard;
  MPI_Init(&argc, &argv);
  {
    MpiControlPlane control(MPI_COMM_WORLD);
    if (argc < 2) {
      if (control.rank() == 0)
        std::fprintf(stderr, "usage: checkpoint_read_bench FILE [--repeats N] [--drop-caches]\n");
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const std::string path = argv[1];
    int repeats = 5;
    bool drop = false;
    for (int i = 2; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--drop-caches") drop = true;
      if (a == "--repeats" && i + 1 < argc) repeats = std::stoi(argv[++i]);
    }
    const size_t size = ReadWholeFile(path).size();
    for (const std::string way : {"each", "shared"}) {
      std::vector<double> times;
      for (int k = 0; k < repeats; ++k) times.push_back(ReadOnce(control, way, path, drop, size));
      std::sort(times.begin(), times.end());
      if (control.rank() == 0) {
        std::printf("| %d | %s | %.1f | %s | %.3f | %.3f |\n", control.world(), way.c_str(), size / 1048576.0,
                    drop ? "dropped" : "cached", times.front(), times[times.size() / 2]);
      }
    }
  }
  MPI_Finalize();
  return 0;
}
