// DataPlane over MPI non-blocking collectives, for CPU tensors of float or double.
#pragma once

#include <mpi.h>

#include "trainer/core/wait_guard.h"
#include "trainer/dist/data_plane.h"

namespace trainguard {

class MpiDataPlane final : public DataPlane {
 public:
  explicit MpiDataPlane(MPI_Comm comm);  // duplicates comm
  ~MpiDataPlane() override;
  MpiDataPlane(const MpiDataPlane&) = delete;
  MpiDataPlane& operator=(const MpiDataPlane&) = delete;

  std::unique_ptr<PendingReduce> StartSum(torch::Tensor tensor) override;
  void Broadcast(torch::Tensor tensor, int root) override;

  // From now on, all-reduces wait under `guard` (may be null: plain blocking waits).
  void set_wait_guard(WaitGuard* guard) { guard_ = guard; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  WaitGuard* guard_ = nullptr;
};

}  // namespace trainguard
