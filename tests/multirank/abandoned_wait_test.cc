// A collective whose wait is given up (a fault notice, a deadline) stays pending in MPI, and MPI
// may complete it later, during whatever MPI calls the stop protocol makes. The control plane
// must not let it complete into memory that the caller has freed on its way out.
//
// Each round: the receivers give up a broadcast at once (its size stage is pending), and fill
// the stack where that broadcast's frame was with zeros; then the root broadcasts, and the
// receivers make MPI progress (a barrier) while the zeros are in place. Before the fix, the
// pending broadcast wrote the payload's size into that stack; now it writes into a buffer the
// plane keeps until the process ends.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/wait_guard.h"

namespace trainguard {
namespace {

// Gives up the wait once `patience` has passed since it was made.
class GiveUpAfter final : public WaitGuard {
 public:
  explicit GiveUpAfter(double patience_s)
      : deadline_(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                         std::chrono::duration<double>(patience_s))) {}
  void Check() override {
    if (std::chrono::steady_clock::now() >= deadline_) throw std::runtime_error("the test's guard gave up");
  }

 private:
  std::chrono::steady_clock::time_point deadline_;
};

// Zeroes a stack frame far larger than Broadcast's, lets MPI progress (the barrier), and counts
// the bytes of the frame that changed meanwhile. Not inlined: its frame must begin where the
// abandoned Broadcast's did.
__attribute__((noinline)) int BytesChangedWhileProgressing() {
  volatile unsigned char frame[1 << 16];
  for (auto& b : frame) b = 0;
  MPI_Barrier(MPI_COMM_WORLD);  // every receiver has given up its wait: the root broadcasts
  MPI_Barrier(MPI_COMM_WORLD);  // the root has broadcast
  int changed = 0;
  for (const auto& b : frame) changed += b != 0;
  return changed;
}

TEST(AbandonedWait, ABroadcastGivenUpNeverCompletesIntoFreedMemory) {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  for (int round = 0; round < 5; ++round) {
    MpiControlPlane plane(MPI_COMM_WORLD);
    if (rank == 0) {
      MPI_Barrier(MPI_COMM_WORLD);  // every receiver has given up its wait
      // The payload stage, which the receivers never reach, may complete here (small messages
      // are sent eagerly) or be given up.
      GiveUpAfter guard(0.3);
      plane.set_wait_guard(&guard);
      std::string bytes(0x0101, 'x');
      try {
        plane.Broadcast(bytes, 0);
      } catch (const std::exception&) {
      }
      MPI_Barrier(MPI_COMM_WORLD);
      continue;
    }
    GiveUpAfter guard(0);
    plane.set_wait_guard(&guard);
    std::string bytes;
    EXPECT_ANY_THROW(plane.Broadcast(bytes, 0));
    EXPECT_EQ(BytesChangedWhileProgressing(), 0) << "round " << round;
  }
}

}  // namespace
}  // namespace trainguard
