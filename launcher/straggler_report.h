// StragglerReport: every few seconds of steps (a window), the ranks gather each rank's mean
// times per step (compute, loader wait, all-reduce wait) and judge each rank's own time (compute
// and loader wait) against the median of the others (stragglers.h). Rank 0 logs each straggler once, as it
// starts, with its host, its ratio and where its time goes, and logs when it recovers; every rank
// exports its own ratio of the window. A slow node holds every rank back, and only its own time,
// not the step time all ranks share, shows which one it is.
#pragma once

#include <cstdint>

#include "diagnostics/faults/fault_watch.h"
#include "diagnostics/faults/liveness.h"
#include "diagnostics/faults/stragglers.h"
#include "diagnostics/metrics/metrics.h"
#include "trainer/core/control_plane.h"
#include "trainer/observer.h"

namespace trainguard {

class StragglerReport final : public TrainObserver {
 public:
  // A window lasts about this long, and at most kMaxWindowSteps steps: a straggler is named
  // within kConfirmWindows (2) such windows of its start, so within 40 steps or about 10 s.
  static constexpr double kWindowS = 5;
  static constexpr int64_t kMaxWindowSteps = 20;

  // `peers` names ranks with their hosts, `metrics` takes the ratios, `watch` names the
  // exchange's wait (each may be null).
  StragglerReport(ControlPlane& control, PeerView* peers, Metrics* metrics, FaultWatch* watch)
      : control_(control), peers_(peers), metrics_(metrics), watch_(watch) {}
  // Collective on the last step of each window: every rank runs the same steps, so every rank
  // ends its windows at the same steps.
  void OnStepEnd(const StepReport& report) override;

 private:
  void Exchange(int64_t last_step);
  std::string Who(int rank) const;

  ControlPlane& control_;
  PeerView* peers_;
  Metrics* metrics_;
  FaultWatch* watch_;
  StragglerTracker tracker_;
  StepTimes sums_;                              // this rank's, this window
  double seconds_ = 0;                          // this rank's step time, this window
  int64_t steps_ = 0;                           // steps of this window so far
  int64_t window_steps_ = kMaxWindowSteps / 2;  // until the first window's step time is known
};

}  // namespace trainguard
