// Helpers on top of the ControlPlane interface.
#include "trainer/core/control_plane.h"

#include "trainer/core/errors.h"

namespace trainguard {

int64_t SumAcrossRanks(ControlPlane& control, int64_t value) {
  std::vector<int64_t> v{value};
  control.AllReduceSum(v);
  return v[0];
}

void AgreeOnFailure(ControlPlane& control, bool failed, const std::string& message) {
  // Lowest failing rank, as max of (world - rank) so that "none" is 0.
  std::vector<int64_t> first{failed ? control.world() - control.rank() : 0};
  control.AllReduceMax(first);
  if (first[0] == 0) return;
  const int failing_rank = control.world() - static_cast<int>(first[0]);
  std::string text = message;
  control.Broadcast(text, failing_rank);
  if (!failed) {
    throw PeerError("rank " + std::to_string(failing_rank) + " failed: " + text);
  }
}

}  // namespace trainguard
