// FaultGuard: the StepHooks the launcher plugs in for fault capture. It arms the FaultWatch for
// each step, keeps a host copy of the weights when training on a GPU (after a device-side
// assert nothing can be copied off the device; any other failure leaves the device readable and
// the bundle gets the step's own weights), keeps the parameters' norms before the last good step
// (WeightHistory), and when a step fails on this rank:
//   1. tells every other rank at once (unless the failure is already agreed, e.g. non-finite, or
//      may yet be quarantined: then the stop tells them, with the outcome),
//   2. writes the repro bundle,
//   3. runs `trainguard diagnose BUNDLE` in a child process and waits for it (bounded).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "diagnostics/faults/bundle.h"
#include "diagnostics/faults/fault_watch.h"
#include "diagnostics/faults/weight_history.h"
#include "trainer/core/sample.h"
#include "trainer/step_hooks.h"

namespace trainguard {

struct FaultOptions {
  std::string bundle_dir = "trainguard-faults";  // bundles go to <dir>/step<N>-rank<R>
  bool run_diagnosis = true;                     // start the child that diagnoses the bundle
  double diagnosis_timeout_s = 55;               // --fault-grace minus a margin (see FaultOptionsFor)
  std::vector<std::string> diagnosis_args;       // extra arguments for the child (fault injection)
  int64_t host_copy_every = 50;                  // steps between host copies of GPU weights
  std::string executable;                        // this program, for the child
  std::string config_text;                       // the resolved configuration, stored in the bundle
  std::string environment;                       // versions, host, GPUs (`trainguard env`): environment.txt
  BundleMeta model;                              // model shape, classes and ignore index (other fields unused)
  // Called first when this rank's own step failed, before the bundle and the diagnosis: the
  // failure is counted at once, since a launcher's teardown may end the rank before its stop.
  std::function<void(ErrorKind)> on_found;
  // The GPU events (Xid, double-bit ECC) this rank saw so far, one line each (GpuWatch::Events):
  // a bundle written while there are any carries them in gpu_events.txt. May be empty.
  std::function<std::vector<std::string>()> gpu_events;
};

class FaultGuard final : public StepHooks {
 public:
  FaultGuard(FaultOptions options, FaultChannel& channel, FaultWatch& watch, const SampleCatalog& catalog,
             torch::Device device);
  void OnModelReady(int64_t global_step, torch::nn::Module& model) override;
  void OnPhase(Phase phase, const std::string& what) override;
  void OnProgress() override;
  void BeforeStep(const StepReport& where, Batch& batch) override;
  void AfterStep(const StepReport& where, torch::nn::Module& model) override;
  void OnStepFailed(const StepFailure& failure) override;

  // The bundle folder written on this rank, empty if none.
  const std::string& bundle() const { return bundle_; }

 private:
  Bundle Capture(const StepFailure& failure) const;
  void RunDiagnosis() const;

  FaultOptions options_;
  FaultChannel& channel_;
  FaultWatch& watch_;
  const SampleCatalog& catalog_;
  torch::Device device_;
  std::map<std::string, torch::Tensor> host_weights_;  // GPU runs: last host copy
  int64_t host_weights_step_ = 0;
  WeightHistory history_;
  std::string bundle_;
};

}  // namespace trainguard
