// Fault injection for tests and demonstrations (--inject-fault): at global step K on rank R,
// poison the batch with a NaN pixel, kill this process with SIGKILL, sleep inside the step,
// (slow) sleep inside every step from K on, making rank R a straggler, (slow-diagnosis) make
// the diagnosis of a failure at that step and rank sleep first, (slow-checkpoint) make rank R's
// writing of every checkpoint after step K or later take S seconds more (a slow disk: rank 0
// writes them), (slow-validation) make rank R's label validation before every epoch whose first
// step is K or later take S seconds more (a large dataset), or (gpu-fault) raise the CUDA error
// of a failed GPU (illegal address) inside the step, on the CPU too.
// Spec syntax: KIND:rank=R:step=K[:seconds=S][:when=after][:host=H], KIND one of nan, kill,
// sleep, slow, slow-diagnosis, slow-checkpoint, slow-validation, gpu-fault; `host=H` fires it only while rank R runs on
// host H (a fault of a node, which a rerun on other nodes does not meet); `when=after` makes a sleep or a kill come
// after the step and its report (the observers' OnStepEnd: progress, metrics), between steps (where the ranks meet in
// evaluation, checkpoints and label validation). Register the injector as a hook and, after the other observers, as an
// observer. (A planted bad label with validation off is --plant-label with --no-validate-labels.)
// For the diagnosis's cases: (nan-weight) after step K's update, a NaN in rank R's first weight
// (features.0.weight), as an update that overflowed leaves it: step K + 1 fails; (bf16-overflow)
// in step K, the centre pixel of row 0 set to 3.4e38, finite in fp32 and infinite once bf16
// autocast rounds it (the largest bf16 is 3.39e38): a run under --precision bf16 fails there.
#pragma once

#include <string>
#include <vector>

#include "trainer/step_hooks.h"

namespace trainguard {

struct FaultSpec {
  enum class Kind {
    kNan,
    kKill,
    kSleep,
    kSlow,
    kSlowDiagnosis,
    kSlowCheckpoint,
    kSlowValidation,
    kGpuFault,
    kNanWeight,
    kBf16Overflow
  } kind = Kind::kNan;
  int rank = 0;
  int64_t step = 1;         // global step, 1-based
  double seconds = 60;      // for sleep, slow (per step), slow-diagnosis, -checkpoint and -validation
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
  void AfterStep(const StepReport& where, torch::nn::Module& model) override;
  void OnEpochBegin(int64_t epoch, EpochPlan& plan) override;
  void OnStepEnd(const StepReport& where) override;
  void OnCheckpoint(int64_t global_step, double seconds, int64_t bytes) override;

 private:
  std::vector<FaultSpec> specs_;
  int rank_;
  int64_t last_step_ = 0;  // the last step this process ran (0: none yet)
};

// In `trainguard diagnose`: sleeps as the slow-diagnosis specs for this bundle's rank and step say.
void DelayDiagnosis(const std::vector<FaultSpec>& specs, int rank, int64_t step);

}  // namespace trainguard
