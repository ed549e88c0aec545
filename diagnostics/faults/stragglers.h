// Stragglers: ranks that hold the others back, judged as they start. Pure: the launcher gathers
// every rank's mean times per step over a window of steps (a few seconds), and the tracker
// compares each rank's own time per step (its compute and its wait for its batch: everything but
// its wait for the others) with the median of the *other* ranks (so that with 2 ranks a
// straggler is judged against its peer, not against a median it is half of). A slow loader
// holds the others back as a slow GPU does. A rank is named
// once when it has been at least kOnsetRatio times the others for kConfirmWindows windows in a
// row, and said to have recovered once it has been under kRecoveredRatio for as many.
#pragma once

#include <cstdint>
#include <vector>

namespace trainguard {

// A rank's mean times per step over a window.
struct StepTimes {
  double compute_s = 0;    // the step's time less its loader and all-reduce waits
  double loader_s = 0;     // waiting for its batch
  double allreduce_s = 0;  // waiting for the other ranks (the agreement and the gradient all-reduce)
  double own() const { return compute_s + loader_s; }  // what the others wait for
};

struct StragglerEvent {
  bool onset = true;  // false: it recovered
  int rank = 0;
  double ratio = 0;            // its own time over the other ranks' median, this window
  double others_median_s = 0;  // the other ranks' median own time per step
  StepTimes times;             // its own, this window
};

// The median of `values` (the mean of the two middle values for an even count); 0 when empty.
double Median(std::vector<double> values);

// Rank `rank`'s own time over the median of the other ranks'; 0 when that median is 0.
double RatioToOthers(const std::vector<StepTimes>& window, int rank);

class StragglerTracker {
 public:
  static constexpr double kOnsetRatio = 1.5;
  static constexpr double kRecoveredRatio = 1.25;
  static constexpr int kConfirmWindows = 2;

  // One window's times, every rank's (the same on every rank: gathered). Returns the onsets and
  // recoveries this window confirms.
  std::vector<StragglerEvent> Take(const std::vector<StepTimes>& window);

 private:
  struct RankState {
    bool straggling = false;
    int streak = 0;  // windows in a row that point the other way
  };
  std::vector<RankState> ranks_;
};

}  // namespace trainguard
