// Fault injection for tests and demonstrations (--inject-fault): at global step K on rank R,
// poison the batch with a NaN pixel, kill this process with SIGKILL, sleep inside the step,
// (slow) sleep inside every step from K on, making rank R a straggler, (slow-diagnosis) make
// the diagnosis of a failure at that step and rank sleep first, or (gpu-fault) raise the CUDA
// error of a failed GPU (illegal address) inside the step, on the CPU too.
// Spec syntax: KIND:rank=R:step=K[:seconds=S][:when=after][:host=H], KIND one of nan, kill,
// sleep, slow, slow-diagnosis, gpu-fault; `host=H` fires it only while rank R runs on host H (a
// fault of a node, which a rerun on other nodes does not meet); `when=after` makes a sleep or a kill come after the
// step and its report (the observers' OnStepEnd: progress, metrics), between steps (where the ranks meet in evaluation,
// checkpoints and label validation). Register the injector as a hook and, after the other
// observers, as an observer.
// (A planted bad label with validation off is --plant-label with --no-validate-labels.)
#pragma once

#include <string>
#include <vector>

#include "trainer/step_hooks.h"

namespace trainguard {

struct FaultSpec {
  enum class Kind { kNan, kKill, kSleep, kSlow, kSlowDiagnosis, kGpuFault } kind = Kind::kNan;
  int rank = 0;
  int64_t step = 1;         // global step, 1-based
  double seconds = 60;      // for sleep, slow (per step) and slow-diagnosis
  bool after_step = false;  // sleep after the step instead of inside it
  std::string host;         // only on this host (empty: any)
};

// Parses one spec; throws ConfigError naming --inject-fault on a bad one.
FaultSpec ParseFaultSpec(const std::string& text);

class FaultInjector final : public StepHooks, public TrainObserver {
 public:
  // Keeps the specs of this host (FaultSpec::host empty or equal to this host's name).
  FaultInjector(std::vector<FaultSpec> specs, int rank);
  void BeforeStep(const StepReport& where, Batch& batch) override;
  void OnStepEnd(const StepReport& where) override;

 private:
  std::vector<FaultSpec> specs_;
  int rank_;
};

// In `trainguard diagnose`: sleeps as the slow-diagnosis specs for this bundle's rank and step say.
void DelayDiagnosis(const std::vector<FaultSpec>& specs, int rank, int64_t step);

}  // namespace trainguard
