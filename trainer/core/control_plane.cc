// Helpers on top of the ControlPlane interface.
#include "trainer/core/control_plane.h"

#include "trainer/core/errors.h"

namespace trainguard {

int64_t SumAcrossRanks(ControlPlane& control, int64_t value) {
  std::vector<int64_t> v{value};
  control.AllReduceSum(v);
  return v[0];
}

void AgreeOnFailure(ControlPlane& control, const std::exception* failure) {
  // Lowest failing rank, as max of (world - rank) so that "none" is 0.
  std::vector<int64_t> first{failure ? control.world() - control.rank() : 0};
  control.AllReduceMax(first);
  if (first[0] == 0) return;
  const int failing_rank = control.world() - static_cast<int>(first[0]);
  // The failing rank's kind as one byte, then its message.
  std::string text = failure ? std::string(1, static_cast<char>(KindOf(*failure))) + failure->what() : "";
  control.Broadcast(text, failing_rank);
  if (failure == nullptr) {
    throw PeerError("rank " + std::to_string(failing_rank) + " failed: " + text.substr(1),
                    static_cast<ErrorKind>(text[0]));
  }
}

}  // namespace trainguard
