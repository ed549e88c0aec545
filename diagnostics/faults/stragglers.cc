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

std::vector<Straggler> FindStragglers(const std::vector<double>& per_rank, double threshold) {
  std::vector<Straggler> found;
  const double median = Median(per_rank);
  if (median <= 0) return found;
  for (size_t r = 0; r < per_rank.size(); ++r) {
    const double ratio = per_rank[r] / median;
    if (ratio >= threshold) found.push_back({static_cast<int>(r), per_rank[r], ratio});
  }
  std::sort(found.begin(), found.end(), [](const Straggler& a, const Straggler& b) { return a.ratio > b.ratio; });
  return found;
}

}  // namespace trainguard
