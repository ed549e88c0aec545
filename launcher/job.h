// What every subcommand sets up before it runs: threads, the device, the control plane and the
// datasets (with planted labels applied), agreed across ranks so that a failure on one rank
// stops all of them; and the label-check options derived from the configuration.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "diagnostics/faults/fault_watch.h"
#include "diagnostics/faults/liveness.h"
#include "diagnostics/labels/label_validation.h"
#include "diagnostics/metrics/metrics.h"
#include "launcher/mpi_session.h"
#include "trainer/comm/data_plane.h"
#include "trainer/comm/fault_channel.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/config.h"
#include "trainer/data/dataset.h"

namespace trainguard {

struct Job {
  explicit Job(MpiSession& mpi) : mpi(mpi), control(MPI_COMM_WORLD), faults(MPI_COMM_WORLD) {}
  MpiSession& mpi;
  MpiControlPlane control;
  FaultChannel faults;                 // out-of-band stop notices
  std::unique_ptr<Liveness> liveness;  // every rank's liveness and progress (world > 1)
  std::unique_ptr<FaultWatch> watch;   // set by train: the wait guard of the MPI planes
  std::unique_ptr<DataPlane> data;     // set by train: the gradient plane
  std::unique_ptr<Metrics> metrics;    // set by each subcommand when a metrics output is asked for
  torch::Device device = torch::kCPU;
  std::unique_ptr<Dataset> train;
  std::unique_ptr<Dataset> test;  // null for the synthetic set or with --no-eval
  // train with --checkpoint: where a failure's fingerprint goes (docs/preemption.md), and when the
  // training last became safe to lose: the run's start, then each checkpoint written (the
  // training thread's: StopRank reads it there).
  std::string failure_file;
  bool failure_counted = false;    // CountFailure ran: the stop protocol does not count it again
  int64_t scrapes_at_failure = 0;  // the endpoint's scrapes when the failure was counted
  double metrics_linger_s = 0;     // --metrics-linger, set with the metrics
  std::chrono::steady_clock::time_point progress_saved_at = std::chrono::steady_clock::now();
};

// Collective. Throws (on every rank) when any rank cannot set up.
void PrepareJob(const TrainConfig& config, Job& job);

// Given each rank's "HOST GPU-ID" (rank order), names the ranks that share a GPU, e.g. "ranks 0,
// 1 share the GPU 0000:3b:00.0 on node-a"; "" when every rank has a GPU of its own. Pure.
std::string SharedGpuError(const std::vector<std::string>& placements);

// Label policy, class count and ignore index for `dataset` under `config`.
LabelCheckOptions LabelOptionsFor(const TrainConfig& config, const Dataset& dataset);

}  // namespace trainguard
