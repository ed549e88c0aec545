// StepHooks: what fault capture and fault injection need from a step, beside TrainObserver
// (which stays free of Torch). Calls come on every rank, on the training thread.
#pragma once

#include <torch/torch.h>

#include <string>

#include "trainer/core/errors.h"
#include "trainer/data/batch.h"
#include "trainer/observer.h"

namespace trainguard {

// A step that failed, as the rank saw it.
struct StepFailure {
  ErrorKind kind = ErrorKind::kInternal;  // kBatchData, kDeviceAssert, kNonFinite or kInternal
  std::string what;                       // the error text, or what was not finite
  bool culprit = false;                   // this rank's batch is (or may be) the cause
  StepReport where;                       // epoch, step and global step of the failure
  // Every rank learned of the failure in the step itself (a non-finite verdict, or a batch's
  // failure under --bad-samples quarantine): no rank needs telling.
  bool agreed = false;
  // --bad-samples quarantine applies (a batch-data failure or a device-side assert): the run may
  // go on without the batch's bad samples, so the failure is counted, and the peers told, only
  // once it stands; and when `agreed` too, the process goes on, so no exit is claimed.
  bool quarantine = false;
  const Batch* batch = nullptr;        // the batch as fed to the model (host tensors)
  int64_t global_valid_targets = 0;    // the loss's divisor: valid targets over all ranks (0: not agreed yet)
  torch::nn::Module* model = nullptr;  // its weights are those the step started from
};

class StepHooks {
 public:
  virtual ~StepHooks() = default;
  // The model is built (and loaded from the checkpoint when resuming); `global_step` steps are
  // done. Comes once, before the first step of this run.
  virtual void OnModelReady(int64_t global_step, torch::nn::Module& model) {}
  // The rank enters a phase between steps whose collectives wait for the others (label
  // validation, evaluation, a checkpoint, the initial broadcast); `what` names it for verdicts.
  virtual void OnPhase(Phase phase, const std::string& what) {}
  // Progress within a phase between steps (an evaluation batch), on the training thread: where a
  // long computation outside any collective may give up (what it throws ends the phase).
  virtual void OnProgress() {}
  // Before the forward pass; may change the batch (fault injection). What it throws is the
  // step's failure, as if the step had raised it.
  virtual void BeforeStep(const StepReport& where, Batch& batch) {}
  // After the optimizer step.
  virtual void AfterStep(const StepReport& where, torch::nn::Module& model) {}
  // The step failed; the trainer throws FaultError after every hook has returned.
  virtual void OnStepFailed(const StepFailure& failure) {}
};

}  // namespace trainguard
