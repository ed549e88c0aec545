// StragglerReport: at the end of every epoch, the ranks gather each rank's mean compute time per
// step (a step's time less its waits for the batch and for the gradient all-reduce, and less a
// checkpoint's writing), and rank 0 names the ranks that compute well above the median: a slow
// node holds every rank back, and only its compute time, not the step time all ranks share,
// shows which one it is. Each rank's ratio to the median goes to the metrics.
#pragma once

#include <chrono>
#include <cstdint>

#include "diagnostics/faults/liveness.h"
#include "diagnostics/metrics/metrics.h"
#include "trainer/core/control_plane.h"
#include "trainer/observer.h"

namespace trainguard {

class StragglerReport final : public TrainObserver {
 public:
  static constexpr double kThreshold = 1.5;  // a rank this many times the median is named

  // `peers` names ranks with their hosts (may be null: ranks only); `metrics` may be null.
  StragglerReport(ControlPlane& control, PeerView* peers, Metrics* metrics)
      : control_(control), peers_(peers), metrics_(metrics) {}
  void OnEpochBegin(int64_t epoch, EpochPlan& plan) override;
  void OnStepEnd(const StepReport& report) override;
  void OnEpochEnd(const EpochReport& report) override;  // collective
  void OnCheckpoint(int64_t global_step, double seconds, int64_t bytes) override;

 private:
  using Clock = std::chrono::steady_clock;
  ControlPlane& control_;
  PeerView* peers_;
  Metrics* metrics_;
  Clock::time_point last_;  // the end of the last step, or the epoch's start
  double compute_s_ = 0;    // this epoch's
  int64_t steps_ = 0;
};

}  // namespace trainguard
