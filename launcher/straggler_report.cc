// Straggler report at each epoch's end (see straggler_report.h).
#include "launcher/straggler_report.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "diagnostics/faults/stragglers.h"
#include "trainer/core/log.h"

namespace trainguard {

void StragglerReport::OnEpochBegin(int64_t, EpochPlan&) {
  last_ = Clock::now();
  compute_s_ = 0;
  steps_ = 0;
}

void StragglerReport::OnStepEnd(const StepReport& report) {
  const auto now = Clock::now();
  const double step_s = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  const double compute = std::max(0.0, step_s - report.loader_wait_s - report.allreduce_wait_s);
  compute_s_ += compute;
  ++steps_;
  if (metrics_ != nullptr) metrics_->AddStepCompute(compute);
}

void StragglerReport::OnCheckpoint(int64_t, double seconds, int64_t) {
  compute_s_ = std::max(0.0, compute_s_ - seconds);  // rank 0's writing is not compute
}

void StragglerReport::OnEpochEnd(const EpochReport& report) {
  std::vector<double> per_rank(static_cast<size_t>(control_.world()), 0.0);
  per_rank[static_cast<size_t>(control_.rank())] = steps_ > 0 ? compute_s_ / static_cast<double>(steps_) : 0;
  control_.AllReduceSum(per_rank);
  const double median = Median(per_rank);
  if (metrics_ != nullptr && median > 0) metrics_->SetStepComputeRatio(per_rank[control_.rank()] / median);
  if (control_.rank() != 0) return;
  for (const Straggler& s : FindStragglers(per_rank, kThreshold)) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "computes its steps %.1fx as long as the median rank (%.3f s against %.3f s a step)", s.ratio,
                  s.seconds, median);
    const std::string who = peers_ != nullptr ? peers_->Name(s.rank) : "rank " + std::to_string(s.rank);
    LogLine("epoch " + std::to_string(report.epoch + 1) + ": straggler: " + who + " " + line +
            "; every rank waits for it at each all-reduce");
  }
}

}  // namespace trainguard
