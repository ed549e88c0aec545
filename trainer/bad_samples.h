// BadSamples: what --bad-samples quarantine needs from the launcher. The trainer knows when a
// step failed on its data, agrees on it across ranks and goes back to the last checkpoint; the
// launcher knows which samples the step's diagnosis named, where they are recorded and how many
// a run may set aside. Calls come on the training thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/step_hooks.h"

namespace trainguard {

// The outcome of setting a failed batch's samples aside on the rank whose step failed.
struct QuarantineVerdict {
  std::vector<int64_t> samples;  // dataset indices now set aside (recorded in the quarantine file)
  std::string refusal;           // non-empty: nothing was set aside and the failure stands, because of this
};

class BadSamples {
 public:
  virtual ~BadSamples() = default;
  // Sorted dataset indices set aside before this run began: never trained on.
  virtual std::vector<int64_t> SetAside() const = 0;
  // On the rank whose step failed, after every hook ran (the diagnosis among them): records the
  // samples the diagnosis named, unless the budget or the file refuses them.
  virtual QuarantineVerdict Quarantine(const StepFailure& failure) = 0;
  // Every rank, once the run has gone back to the checkpoint of `resumed_step` without `samples`
  // (every rank's, sorted), after step `failed_step` failed on them.
  virtual void OnSetAside(const std::vector<int64_t>& samples, int64_t failed_step, int64_t resumed_step) = 0;
};

}  // namespace trainguard
