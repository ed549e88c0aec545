// Straggler detection (see stragglers.h).
#include "diagnostics/faults/stragglers.h"

#include <algorithm>

namespace trainguard {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double RatioToOthers(const std::vector<StepTimes>& window, int rank) {
  std::vector<double> others;
  for (size_t r = 0; r < window.size(); ++r) {
    if (static_cast<int>(r) != rank) others.push_back(window[r].own());
  }
  const double median = Median(others);
  return median > 0 ? window[rank].own() / median : 0;
}

std::vector<StragglerEvent> StragglerTracker::Take(const std::vector<StepTimes>& window) {
  ranks_.resize(window.size());
  std::vector<StragglerEvent> events;
  for (size_t r = 0; r < window.size(); ++r) {
    const int rank = static_cast<int>(r);
    const double ratio = RatioToOthers(window, rank);
    if (ratio <= 0) continue;  // no step timed on the others: no judgement
    RankState& s = ranks_[r];
    const bool turned = s.straggling ? ratio < kRecoveredRatio : ratio >= kOnsetRatio;
    s.streak = turned ? s.streak + 1 : 0;
    if (s.streak < kConfirmWindows) continue;
    s.straggling = !s.straggling;
    s.streak = 0;
    events.push_back({s.straggling, rank, ratio, window[r].own() / ratio, window[r]});
  }
  return events;
}

}  // namespace trainguard
