// Stragglers: ranks whose steps compute well above the median rank's. Pure: the launcher gathers
// every rank's mean compute time of an epoch (a step's time less what it waited for its batch
// and for the gradient all-reduce) and asks which ranks hold the others back.
#pragma once

#include <string>
#include <vector>

namespace trainguard {

struct Straggler {
  int rank = 0;
  double seconds = 0;  // its mean compute time per step
  double ratio = 0;    // over the median rank's
};

// The median of `per_rank` (the mean of the two middle values for an even count); 0 when empty.
double Median(std::vector<double> per_rank);

// Ranks whose compute time is at least `threshold` times the median, slowest first. None when
// the median is 0 (no step timed).
std::vector<Straggler> FindStragglers(const std::vector<double>& per_rank, double threshold);

}  // namespace trainguard
