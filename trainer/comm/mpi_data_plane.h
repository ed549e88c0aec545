// DataPlane over MPI non-blocking collectives, for dense tensors of float, double or int64.
// CPU tensors are reduced in place. Tensors on a device (CUDA) are staged through a host copy
// (pinned memory): copied out, reduced on the host, copied back when the reduction is waited
// for. This lets several ranks share one GPU, and nodes without working NCCL train, at the cost
// of two copies per bucket.
#pragma once

#include <mpi.h>

#include "trainer/comm/data_plane.h"
#include "trainer/core/wait_guard.h"

namespace trainguard {

class MpiDataPlane final : public DataPlane {
 public:
  // Duplicates comm. `stage_host_tensors` stages CPU tensors too, through a separate host
  // buffer (the device path, without a device: for tests).
  explicit MpiDataPlane(MPI_Comm comm, bool stage_host_tensors = false);
  ~MpiDataPlane() override;
  MpiDataPlane(const MpiDataPlane&) = delete;
  MpiDataPlane& operator=(const MpiDataPlane&) = delete;

  std::unique_ptr<PendingReduce> StartSum(torch::Tensor tensor) override;
  void Broadcast(torch::Tensor tensor, int root) override;

  // From now on, all-reduces wait under `guard` (may be null: plain blocking waits).
  void set_wait_guard(WaitGuard* guard) { guard_ = guard; }

 private:
  bool Staged(const torch::Tensor& t) const { return stage_host_tensors_ || !t.device().is_cpu(); }

  MPI_Comm comm_ = MPI_COMM_NULL;
  bool stage_host_tensors_ = false;
  WaitGuard* guard_ = nullptr;
};

}  // namespace trainguard
