// Progress output of rank 0: a self-rewriting line on a terminal, plain log lines otherwise,
// and one result line per epoch on stdout. Other ranks print nothing.
#pragma once

#include <chrono>
#include <cstdint>

#include "trainer/observer.h"

namespace trainguard {

class ProgressPrinter final : public TrainObserver {
 public:
  ProgressPrinter(bool enabled, int64_t epochs, int64_t log_every);
  void OnEpochBegin(int64_t epoch, EpochPlan& plan) override;
  void OnStepEnd(const StepReport& report) override;
  void OnEpochEnd(const EpochReport& report) override;

 private:
  bool enabled_;
  bool terminal_;
  int64_t epochs_;
  int64_t log_every_;
  int64_t window_images_ = 0;
  std::chrono::steady_clock::time_point window_start_;
};

}  // namespace trainguard
