// MPI for the life of the process: initialises MPI (thread-multiple, so that later watchdog and
// autograd threads may call it), and reads rank, local rank (rank among the processes on this
// node) and world size. A process started without mpirun is a world of one.
#pragma once

#include <mpi.h>

namespace trainguard {

class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();  // MPI_Finalize
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }
  int local_rank() const { return local_rank_; }
  int local_world() const { return local_world_; }

 private:
  int rank_ = 0, world_ = 1, local_rank_ = 0, local_world_ = 1;
};

}  // namespace trainguard
