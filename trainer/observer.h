// The trainer's only outward interface: the launcher plugs progress output (and later label
// validation, fault capture and metrics) in here. The trainer knows nothing of its observers.
// Calls come on every rank, on the training thread.
#pragma once

#include <cstdint>
#include <vector>

namespace trainguard {

// This rank's samples for (the rest of) one epoch, which observers may change before it starts
// (label validation drops or ignores bad labels). Every rank's shard must keep the same size.
struct EpochPlan {
  std::vector<int64_t> shard;    // dataset indices in visiting order
  int64_t unique_entries = 0;    // leading entries of `shard` that are not sampler padding
  std::vector<int64_t> ignored;  // sorted dataset indices whose targets become the ignore index
  int64_t start = 0;             // leading entries of the epoch's order trained before this plan
  int64_t epoch_samples = 0;     // entries of the epoch's order: the samples not set aside
};

struct StepReport {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;  // 1-based: steps of this epoch done, this one included
  int64_t steps_per_epoch = 0;
  int64_t global_step = 0;      // steps done since the run began, resumed steps included
  double loss = 0;              // mean loss over the global batch
  int64_t global_images = 0;    // images of this step over all ranks
  int64_t images = 0;           // this rank: images of its batch
  double loader_wait_s = 0;     // this rank: how long the step waited for its batch
  double allreduce_wait_s = 0;  // this rank: how long the step waited for the others: the agreement after the
                                // forward pass and the gradient all-reduce after backward
  int64_t ignored_targets = 0;  // this rank: targets of the batch the loss skipped
  double seconds = 0;           // this rank: the step's wall time, its loader wait included
};

struct EpochReport {
  int64_t epoch = 0;
  double mean_loss = 0;        // mean of the step losses of this run's steps in the epoch
  double train_accuracy = -1;  // fraction of this run's valid training targets of the epoch the model
                               // predicted (before each step's update), all ranks; -1 when none
  double test_accuracy = -1;   // fraction in [0,1]; -1 when not evaluated
  int64_t test_correct = 0;
  int64_t test_total = 0;
};

// What a rank does between steps, as the trainer enters it (monitoring; training itself is
// reported by OnStepEnd).
enum class Phase {
  kStarting,       // the initial broadcast of the weights, loading or reloading a checkpoint
  kValidating,     // label validation before an epoch
  kEvaluating,     // the evaluation after an epoch and the epoch's accuracy counts
  kCheckpointing,  // writing a checkpoint (every rank takes part)
  kTraining,       // agreeing on a failed batch's samples within a step
};

class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void OnPhase(Phase phase) {}
  // Progress within a phase: one evaluation batch done.
  virtual void OnProgress() {}
  // May change `plan`; an exception stops training before the epoch's first step.
  virtual void OnEpochBegin(int64_t epoch, EpochPlan& plan) {}
  virtual void OnStepEnd(const StepReport& report) {}
  virtual void OnEpochEnd(const EpochReport& report) {}
  // A checkpoint after `global_step` written by this rank (rank 0 writes; the others are not called).
  virtual void OnCheckpoint(int64_t global_step, double seconds, int64_t bytes) {}
};

}  // namespace trainguard
