// FaultChannel: the out-of-band path for "stop": point-to-point MPI messages on a communicator
// of their own, which a rank can receive while its collectives on the other communicators are
// stuck. A failing rank tells every other rank; waiting ranks poll for notices (FaultWatch);
// at the end every rank meets the others in a barrier with a deadline before it exits, so a
// rank still writing its repro bundle is not killed by the launcher.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace trainguard {

struct FaultNotice {
  int from = 0;
  int kind = 0;      // an ErrorKind, or FaultChannel::kWaiting
  int64_t step = 0;  // global step the sender was in
  std::string message;
};

class FaultChannel {
 public:
  static constexpr int kWaiting = 1000;  // "I am waiting in step `step`" (stall detection)

  explicit FaultChannel(MPI_Comm comm);  // duplicates comm
  FaultChannel(const FaultChannel&) = delete;
  FaultChannel& operator=(const FaultChannel&) = delete;

  int rank() const { return rank_; }
  int world() const { return world_; }

  // Sends the notice to every other rank without blocking. Thread-safe. Never throws: it is
  // called on the way out of a failing rank; a peer MPI refuses is logged and skipped.
  void Tell(int kind, int64_t step, const std::string& message) noexcept;
  // The next notice that has arrived, if any; never blocks.
  std::optional<FaultNotice> Poll();
  // Waits until every rank calls Rendezvous, `timeout_s` passes, or `give_up` (if set) says
  // that no one else will come; true if all came. Meanwhile drains incoming notices and
  // completes this rank's sends. Never throws (an MPI error ends the wait, logged).
  bool Rendezvous(double timeout_s, const std::function<bool()>& give_up = {}) noexcept;

 private:
  // Completes the sends in flight that can complete, releasing their buffers when all have.
  void TestSends();

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
  std::mutex mutex_;                  // Tell may come from the watchdog thread too
  std::deque<std::string> outgoing_;  // buffers of sends in flight (a deque keeps them in place)
  std::vector<MPI_Request> sends_;
};

}  // namespace trainguard
