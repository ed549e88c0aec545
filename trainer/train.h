// The training loop: sharded data, the HW3 model, global-count cross-entropy, bucketed gradient
// all-reduce, Adam, per-epoch evaluation and checkpoints. Every rank runs the same steps; every
// decision that changes control flow is agreed over the control plane.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "trainer/bad_samples.h"
#include "trainer/checkpoint.h"
#include "trainer/comm/data_plane.h"
#include "trainer/comm/grad_reducer.h"
#include "trainer/core/config.h"
#include "trainer/core/control_plane.h"
#include "trainer/data/batch.h"
#include "trainer/data/prefetcher.h"
#include "trainer/fused_adam.h"
#include "trainer/model/hw3_net.h"
#include "trainer/observer.h"
#include "trainer/step_hooks.h"

namespace trainguard {

// The collaborators a run needs besides its configuration and data.
struct TrainContext {
  ControlPlane& control;
  DataPlane& data;
  torch::Device device = torch::kCPU;
  std::vector<TrainObserver*> observers = {};  // called in this order
  std::vector<StepHooks*> hooks = {};          // called in this order
  // Set (from any thread) to ask for a stop with a checkpoint: the ranks agree on the first step
  // that one of them starts after the request, and training stops after it (TrainSummary::preempted).
  const std::atomic<bool>* stop_requested = nullptr;
  // --bad-samples quarantine: a step that fails on its data sets the samples its diagnosis names
  // aside and the run goes on from the last checkpoint without them (null: the failure stops it).
  BadSamples* bad_samples = nullptr;
  // Called instead of unwinding when a step failed with a CUDA device-side assert (or another
  // CUDA error on a GPU), while the batch, the loader's queue and the model are still alive:
  // after such an error every CUDA call fails, so freeing their memory (pinned host memory
  // records CUDA events) would throw from a destructor and abort the process (seen on an H200).
  // It must end the process (the stop protocol); if it throws, that exception propagates.
  std::function<void(const std::exception&)> on_device_lost = nullptr;
};

struct TrainSummary {
  TrainPosition end;  // where training stopped
  int64_t steps_this_run = 0;
  std::optional<double> images_per_second;  // global, over the steps after --warmup-steps (none if no such step)
  std::optional<double> test_accuracy;      // of the last evaluation
  // Training stopped early on a stop request agreed by every rank, after the checkpoint of `end`
  // (when --checkpoint is set): the run is to be continued with --resume.
  bool preempted = false;
  // This rank's time in the training loops (batches and steps), and the part of it spent waiting
  // for the loader to hand over the next batch: near 0 while decoding keeps up.
  double loop_seconds = 0;
  double loader_wait_seconds = 0;
};

// One line on how long the steps waited for batches (with a hint when they waited much), e.g.
// "loader wait: 0.4 s of 120.0 s in the training loop (0.3%)".
std::string LoaderWaitLine(const TrainSummary& summary);

// Whether training on `device` runs the fused BatchNorm-ReLU-pool blocks (--fused-blocks). "auto"
// fuses where the fused kernels were verified and measured faster than the modules: nowhere yet
// (slower on the CPU; not yet run on a GPU). Throws ConfigError for "on" where this build has no
// fused kernels.
bool UseFusedBlocks(const TrainConfig& config, torch::Device device);

// The model the configuration asks for, for `dataset`: the shape a checkpoint records.
ModelShape ModelShapeOf(const TrainConfig& config, const Dataset& dataset);

// The model the configuration asks for, sized for `dataset`, seeded from config.seed, with fused
// blocks where UseFusedBlocks says so for `train_device` (evaluation never fuses).
Hw3Net MakeModel(const TrainConfig& config, const Dataset& dataset, torch::Device train_device = torch::kCPU);

// How batches are built ahead: --loader-threads, --prefetch, pinned on a GPU.
LoaderOptions LoaderFor(const TrainConfig& config, torch::Device device);

// Adam (fused: one kernel call per step) with the configured learning rate and weight decay.
std::unique_ptr<FusedAdam> MakeOptimizer(const TrainConfig& config, Hw3Net& model);

class Trainer {
 public:
  // `test` may be null (no evaluation). Broadcasts rank 0's initial weights to every rank and,
  // with config.resume "yes" (or "auto" when a rank sees the file), loads the checkpoint (agreed
  // across ranks; rank 0 logs its ResumeLine). A checkpoint of another world size resumes from
  // the same sample of the epoch with --batch-size per rank unchanged: the global batch follows
  // the world size.
  Trainer(const TrainConfig& config, const Dataset& train, const Dataset* test, TrainContext context);

  // Trains until the configured epochs or max_steps are done. With a BadSamples, a step that
  // fails on its data is retrained from the last checkpoint without the samples set aside.
  TrainSummary Run();

  // One optimizer step on this rank's part of the global batch; returns the global mean loss.
  // A non-finite global loss or gradient norm throws FaultError(kNonFinite) on every rank,
  // before the weights change. Where a failed batch can be set aside in this process (see
  // QuarantinesHere), a rank's forward failure is agreed too: it rethrows there, and the
  // others throw FaultError(kBatchData), before any gradient is exchanged.
  double Step(const Batch& batch);

  Hw3Net& model() { return model_; }

 private:
  // Tells the hooks (`what`, for stall verdicts between steps) and the observers (`phase`).
  void EnterPhase(Phase phase, const std::string& what);
  void BroadcastInitialWeights();
  void AverageBuffers();                           // BatchNorm running statistics, kept per rank between epochs
  bool ResumeAgreed();                             // whether to load --checkpoint, under config.resume
  void SaveAgreed(const TrainPosition& position);  // once per position: a repeat does nothing
  // Adds this epoch's correct predictions and valid targets over all ranks to `report` (one
  // device read per epoch) and resets the counts.
  void ReportTrainAccuracy(EpochReport& report);
  std::optional<double> EvaluateEpoch(EpochReport& report);
  // This rank's shard of the rest of `epoch`: the epoch's order from entry `start` on (clamped
  // to the kept samples: a set-aside sample can shorten the order below a checkpoint's position).
  EpochPlan PlanEpoch(int64_t epoch, int64_t start);
  // Runs Step; on failure tells the hooks (with this rank's share of the blame) and throws
  // FaultError. Errors of other ranks (PeerError) and of the library (CommError) pass through.
  double GuardedStep(Batch& batch, const StepReport& where);
  // Whether this rank's forward failure `e` is agreed in the step and its samples set aside in
  // this process: a batch-data error where the device survives (not CUDA, not forced to restart).
  bool QuarantinesHere(const std::exception& e) const;
  // After every hook saw `failure`: sets the bad samples aside, or lets the failure stand (returns).
  // Agreed failures: every rank takes part and, when samples were set aside, throws SetAsideError.
  // Otherwise (a lost device) the failing rank throws FaultError(kQuarantined): rerun me.
  void QuarantineOrStand(const StepFailure& failure);
  // Goes back to the last checkpoint without the samples of `set_aside`; returns its position.
  TrainPosition ResumeWithout(const std::vector<int64_t>& samples, int64_t failed_step);

  double allreduce_wait_s_ = 0;              // of the last Step: its waits for the others (see StepReport)
  int64_t global_valid_ = 0;                 // of the last Step: valid targets over all ranks (0 until agreed)
  bool local_loss_finite_ = true;            // of the last Step: whether this rank's loss sum was finite
  bool gradient_not_finite_ = false;         // of the last Step: the reduced gradient norm was not finite
  bool stop_agreed_ = false;                 // a rank asked for a stop before the last Step (agreed in it)
  bool failure_agreed_ = false;              // of the last Step: a rank's batch failure was agreed in it
  std::vector<int64_t> set_aside_;           // sorted dataset indices never trained on (quarantined)
  torch::Tensor epoch_correct_;              // this rank's correct predictions this epoch, on the device
  int64_t epoch_valid_ = 0;                  // this rank's valid targets this epoch
  std::optional<TrainPosition> last_saved_;  // of the last checkpoint written

  const TrainConfig& config_;
  const Dataset& train_;
  const Dataset* test_;
  TrainContext ctx_;
  Hw3Net model_;
  std::unique_ptr<FusedAdam> optimizer_;
  std::unique_ptr<GradReducer> reducer_;
  TrainPosition start_;
  RunShape shape_;
  std::string gpu_bus_id_;  // read while the GPU is healthy, for a GPU fault's report
};

}  // namespace trainguard
