// The launcher's side of the metrics (diagnostics/metrics): the options from the flags, the
// observer that feeds the trainer's reports into them, and the last report every exit path
// makes (a push to the Pushgateway and the textfile), because the /metrics endpoint dies with
// the process.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <exception>
#include <memory>
#include <string>

#include "diagnostics/labels/label_verdict.h"
#include "diagnostics/metrics/gpu_watch.h"
#include "diagnostics/metrics/metrics.h"
#include "launcher/job.h"
#include "trainer/core/config.h"
#include "trainer/core/control_plane.h"
#include "trainer/observer.h"

namespace trainguard {

// Collective: job.metrics from the flags (null when no metrics output is asked for; ConfigError,
// naming the flag, for a bad value), with its progress deadline (--step-timeout + --fault-grace). The endpoint is
// started (a warning on failure, or ConfigError under --metrics-required), and rank 0 writes the --metrics-targets file
// of every rank's endpoint.
void StartJobMetrics(const TrainConfig& config, Job& job);

// Label validation's counts, as trainguard_labels and trainguard_labels_per_class, on rank 0 only:
// they are the whole set's, and a sum over ranks would multiply them by the world size.
void RecordLabels(Metrics& metrics, const LabelReport& report, int rank);

// Writes the textfile and pushes, printing the warnings; bounded by --push-timeout.
void FlushMetrics(const Metrics* metrics);

// After a failure or a clean end: an endpoint that a scraper reads (scraped at least once, i.e.
// `scrapes_before` > 0, the serves when the end was recorded) keeps serving until it is scraped
// once more, so that the end (`what`, for the log line when it is not) reaches Prometheus even at
// a 15 s scrape interval with no Pushgateway. Bounded by `linger_s`; cut short when the launcher
// ends the job (StopHurried). An endpoint nobody scraped does not wait: no scraper is there.
void LingerForScrape(const Metrics* metrics, int64_t scrapes_before, double linger_s, const std::string& what);

// On a CUDA device: a GpuWatch of this rank's GPU (its health into job.metrics, when there are
// metrics; its Xid and ECC events logged and kept for a repro bundle). Null on the CPU, and when
// NVML cannot be opened (no driver, no such GPU): that is logged once, and the run goes on.
std::unique_ptr<GpuWatch> StartGpuWatch(const Job& job);

// Counts a failure (kind and exit code) and flushes: every failing exit path calls it.
void ReportFailure(Metrics* metrics, const std::string& kind, int exit_code);

// Feeds the trainer's step and epoch reports, phases and progress into the metrics; flushes at
// each epoch end. The phase is "training" from the end of a step to the next OnPhase.
class MetricsObserver final : public TrainObserver {
 public:
  MetricsObserver(Metrics& metrics, torch::Device device) : metrics_(metrics), device_(device) {}
  void OnEpochBegin(int64_t epoch, EpochPlan& plan) override;
  void OnStepEnd(const StepReport& report) override;
  void OnEpochEnd(const EpochReport& report) override;  // also reads the GPU memory on a GPU
  void OnCheckpoint(int64_t global_step, double seconds, int64_t bytes) override;
  void OnPhase(Phase phase) override;
  void OnProgress() override;

 private:
  using Clock = std::chrono::steady_clock;
  Metrics& metrics_;
  bool training_ = false;  // the phase is "training": a step ended since the last OnPhase
  torch::Device device_;
  Clock::time_point last_;  // the end of the last step, or the epoch's start
  Clock::time_point epoch_start_;
  int64_t epoch_images_ = 0;  // this rank's
};

}  // namespace trainguard
