// ControlPlane over MPI. Uses its own duplicate of the given communicator so that control
// messages never mix with the data plane's.
#pragma once

#include <mpi.h>

#include "trainer/core/control_plane.h"
#include "trainer/core/wait_guard.h"

namespace trainguard {

class MpiControlPlane final : public ControlPlane {
 public:
  explicit MpiControlPlane(MPI_Comm comm);
  ~MpiControlPlane() override;
  MpiControlPlane(const MpiControlPlane&) = delete;
  MpiControlPlane& operator=(const MpiControlPlane&) = delete;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  void AllReduceSum(std::vector<int64_t>& values) override;
  void AllReduceSum(std::vector<double>& values) override;
  void AllReduceMax(std::vector<int64_t>& values) override;
  void Broadcast(std::string& bytes, int root) override;
  std::vector<std::string> AllGather(const std::string& bytes) override;

  // From now on, all-reduces wait under `guard` (may be null: plain blocking waits).
  void set_wait_guard(WaitGuard* guard) { guard_ = guard; }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int world_ = 1;
  WaitGuard* guard_ = nullptr;
};

}  // namespace trainguard
