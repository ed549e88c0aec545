// Straggler report every window of steps (see straggler_report.h).
#include "launcher/straggler_report.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "trainer/core/log.h"

namespace trainguard {

void StragglerReport::OnStepEnd(const StepReport& report) {
  const double compute = std::max(0.0, report.seconds - report.loader_wait_s - report.allreduce_wait_s);
  sums_.compute_s += compute;
  sums_.loader_s += report.loader_wait_s;
  sums_.allreduce_s += report.allreduce_wait_s;
  seconds_ += report.seconds;
  if (metrics_ != nullptr) metrics_->AddStepCompute(compute);
  if (++steps_ >= window_steps_) Exchange(report.global_step);
}

std::string StragglerReport::Who(int rank) const {
  return peers_ != nullptr ? peers_->Name(rank) : "rank " + std::to_string(rank);
}

void StragglerReport::Exchange(int64_t last_step) {
  if (watch_ != nullptr) {
    watch_->SetPhase("the straggler check after step " + std::to_string(last_step), WaitPhase::kStragglerCheck);
  }
  const int world = control_.world(), rank = control_.rank();
  const double n = static_cast<double>(steps_);
  // Three means per rank, then the sum of every rank's mean step time (to size the next window
  // alike on every rank).
  std::vector<double> all(static_cast<size_t>(3 * world + 1), 0.0);
  all[3 * rank] = sums_.compute_s / n;
  all[3 * rank + 1] = sums_.loader_s / n;
  all[3 * rank + 2] = sums_.allreduce_s / n;
  all.back() = seconds_ / n;
  control_.AllReduceSum(all);
  std::vector<StepTimes> window(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) window[r] = {all[3 * r], all[3 * r + 1], all[3 * r + 2]};
  const double step_s = all.back() / world;
  const int64_t first_step = last_step - steps_ + 1;
  window_steps_ =
      step_s > 0 ? std::clamp<int64_t>(static_cast<int64_t>(kWindowS / step_s), 1, kMaxWindowSteps) : kMaxWindowSteps;
  sums_ = {};
  seconds_ = 0;
  steps_ = 0;
  if (metrics_ != nullptr) metrics_->SetStepComputeRatio(RatioToOthers(window, rank));
  const std::vector<StragglerEvent> events = tracker_.Take(window);
  if (rank != 0) return;
  const std::string steps = "steps " + std::to_string(first_step) + "-" + std::to_string(last_step);
  for (const StragglerEvent& e : events) {
    char line[400];
    if (e.onset) {
      std::snprintf(line, sizeof line,
                    "takes %.1fx as long as the other ranks' median over its own part of a step (%.3f s against "
                    "%.3f s, %s); a step of it: compute %.3f s, loader wait %.3f s, all-reduce wait %.3f s; every rank "
                    "waits for it at each all-reduce",
                    e.ratio, e.times.own(), e.others_median_s, steps.c_str(), e.times.compute_s, e.times.loader_s,
                    e.times.allreduce_s);
      LogLine("straggler: " + Who(e.rank) + " " + line);
    } else {
      std::snprintf(line, sizeof line, "takes %.1fx as long as the other ranks' median again (%s)", e.ratio,
                    steps.c_str());
      LogLine("straggler recovered: " + Who(e.rank) + " " + line);
    }
  }
}

}  // namespace trainguard
