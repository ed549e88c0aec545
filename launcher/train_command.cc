// `trainguard train`: the data plane, the metrics, the observers and hooks (label validation,
// progress, fault capture and injection, metrics), the training run and its summary.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "diagnostics/faults/fault_guard.h"
#include "diagnostics/faults/fault_injection.h"
#include "diagnostics/labels/label_guard.h"
#include "launcher/build_info.h"
#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/image_doctor.h"
#include "launcher/metrics_report.h"
#include "launcher/progress.h"
#include "launcher/sample_quarantine.h"
#include "launcher/signals.h"
#include "launcher/stop.h"
#include "launcher/straggler_report.h"
#include "trainer/comm/data_plane_factory.h"
#include "trainer/core/log.h"
#include "trainer/data/image_folder.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

FaultOptions FaultOptionsFor(const Command& command, const Dataset& train, const LabelCheckOptions& labels) {
  const TrainConfig& c = command.train;
  FaultOptions o;
  o.bundle_dir = c.bundle_dir;
  o.run_diagnosis = c.diagnose;
  // One budget: the peers wait --fault-grace for the failing rank, so its diagnosis must end
  // a margin earlier, or the launcher would end the job while the diagnosis still runs.
  o.diagnosis_timeout_s = std::max(1.0, c.fault_grace - 5);
  for (const auto& spec : c.inject_faults) {
    if (ParseFaultSpec(spec).kind == FaultSpec::Kind::kSlowDiagnosis)
      o.diagnosis_args.insert(o.diagnosis_args.end(), {"--inject-fault", spec});
  }
  o.host_copy_every = c.host_copy_every;
  char self[4096] = {0};
  if (::readlink("/proc/self/exe", self, sizeof self - 1) > 0) o.executable = self;
  o.config_text = command.resolved;
  o.environment = EnvironmentReport();
  o.model.num_classes = labels.num_classes;
  o.model.ignore_index = c.ignore_index;
  o.model.in_channels = train.shape().channels;
  o.model.image_size = train.shape().height;
  o.model.width = c.width;
  o.model.precision = c.precision;
  return o;
}

// Under --unreadable skip: how many files were skipped over all ranks (rank 0), and which ones
// (each rank lists its own, at most 20).
void ReportSkipped(const Dataset& dataset, ControlPlane& control, Metrics* metrics) {
  const auto* folder = dynamic_cast<const ImageFolderDataset*>(&dataset);
  if (folder == nullptr) return;
  const std::vector<std::string> skipped = folder->skipped();
  if (metrics != nullptr) metrics->AddUnreadableImages(static_cast<int64_t>(skipped.size()));
  const int64_t total = SumAcrossRanks(control, static_cast<int64_t>(skipped.size()));
  for (size_t i = 0; i < skipped.size() && i < 20; ++i) LogLine("skipped unreadable image " + skipped[i]);
  if (control.rank() == 0 && total > 0)
    std::printf("skipped %lld unreadable image reads in all\n", static_cast<long long>(total));
}

// Keeps Job::progress_saved_at at the last checkpoint written, for the stop's lost-time figure.
class SavedProgressClock final : public TrainObserver {
 public:
  explicit SavedProgressClock(Job& job) : job_(job) {}
  void OnCheckpoint(int64_t, double, int64_t) override { job_.progress_saved_at = std::chrono::steady_clock::now(); }

 private:
  Job& job_;
};

// Tells the GPU watch the last step this rank finished, so that a GPU event names it.
class GpuStepClock final : public TrainObserver {
 public:
  explicit GpuStepClock(GpuWatch& watch) : watch_(watch) {}
  void OnStepEnd(const StepReport& report) override { watch_.SetStep(report.global_step); }

 private:
  GpuWatch& watch_;
};

}  // namespace

int Train(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  MpiSession& mpi = job.mpi;
  if (!config.checkpoint.empty()) job.failure_file = config.checkpoint + ".failure";
  if (mpi.rank() == 0 && config.restart_count > 0) {
    std::string excluded;
    for (const std::string& node : config.excluded_nodes) excluded += (excluded.empty() ? "" : ",") + node;
    LogLine("restart " + std::to_string(config.restart_count) + " of this job (--restart-count), " +
            std::to_string(config.restarts_in_place) + " of them in place (--restarts-in-place)" +
            (excluded.empty() ? "" : "; nodes left out after failures: " + excluded));
  }
  job.watch->SetPhase("the set-up of the data plane");
  job.data = MakeDataPlane(config, job.device, job.control, job.watch.get());
  job.watch->SetPhase("the start of the metrics");
  StartJobMetrics(config, job);
  if (job.metrics) {
    job.metrics->SetRestarts(config.restart_count, config.restarts_in_place, config.excluded_nodes);
    job.metrics->SetRunInfo({TRAINGUARD_VERSION, UsesNccl(config, job.device) ? "nccl" : "mpi",
                             job.device.is_cuda() ? "cuda" : "cpu", config.precision});
  }
  const std::unique_ptr<GpuWatch> gpu_watch = StartGpuWatch(job);
  DataPlane& plane = *job.data;
  const LabelCheckOptions label_options = LabelOptionsFor(config, *job.train);
  std::vector<FaultSpec> injected;
  for (const auto& spec : config.inject_faults) injected.push_back(ParseFaultSpec(spec));

  LabelGuard labels(job.control, *job.train, label_options, config.label_report);
  ProgressPrinter progress(mpi.rank() == 0, config.epochs, config.log_every);
  FaultOptions fault_options = FaultOptionsFor(command, *job.train, label_options);
  fault_options.on_found = [&job](ErrorKind kind) { CountFailure(FaultError(kind, ""), job); };
  if (gpu_watch) fault_options.gpu_events = [&gpu_watch] { return gpu_watch->Events(); };
  FaultGuard faults(fault_options, job.faults, *job.watch, *job.train, job.device);
  FaultInjector injector(injected, mpi.rank());
  TrainContext context{job.control, plane, job.device, {}, {&faults, &injector}, &StopRequested()};
  std::optional<SampleQuarantine> quarantine;
  if (config.bad_samples == "quarantine") {
    context.bad_samples = &quarantine.emplace(config, job.train->size(), faults, mpi.rank(), job.metrics.get());
    labels.add_section("set_aside", [&quarantine] { return quarantine->Json(); });
  }
  SignalMetricsScope signal_metrics(job.metrics.get());
  context.on_device_lost = [&job, &config](const std::exception& e) { StopRank(e, job, config.fault_grace); };
  if (config.validate_labels) context.observers.push_back(&labels);
  context.observers.push_back(&progress);
  SavedProgressClock saved_progress(job);
  if (!config.checkpoint.empty()) context.observers.push_back(&saved_progress);
  StragglerReport stragglers(job.control, job.liveness.get(), job.metrics.get(), job.watch.get());
  if (mpi.world() > 1) context.observers.push_back(&stragglers);
  std::optional<GpuStepClock> gpu_step_clock;
  if (gpu_watch) context.observers.push_back(&gpu_step_clock.emplace(*gpu_watch));
  std::optional<MetricsObserver> metrics_observer;
  if (job.metrics) {
    labels.set_on_report([&job](const LabelReport& report) { RecordLabels(*job.metrics, report, job.mpi.rank()); });
    context.observers.push_back(&metrics_observer.emplace(*job.metrics, job.device));
  }
  context.observers.push_back(&injector);  // last: a fault after a step comes after its report

  CheckImagesFirst(config, job, labels);
  Trainer trainer(config, *job.train, job.test.get(), context);
  if (mpi.rank() == 0)
    LogLine("training on " + job.device.str() + ", " + std::to_string(job.train->size()) + " samples");
  const TrainSummary s = trainer.Run();
  ReportSkipped(*job.train, job.control, job.metrics.get());
  if (quarantine && mpi.rank() == 0) std::printf("%s", quarantine->Summary().c_str());
  plane.Shutdown();
  if (job.metrics) {
    if (s.preempted) {
      job.metrics->OnPreemption();
      job.metrics->SetExitCode(kExitPreempted);
    } else {
      job.metrics->OnFinished();
    }
  }
  const int64_t scrapes_at_end = job.metrics ? job.metrics->scrapes() : 0;
  FlushMetrics(job.metrics.get());
  if (s.preempted) {
    if (mpi.rank() == 0) {
      LogLine("stopped on request after step " + std::to_string(s.end.global_step) + ": checkpoint " +
              config.checkpoint + " written; exiting with code " + std::to_string(kExitPreempted) +
              " (requeue: run the same command with --resume auto)");
    }
    return kExitPreempted;
  }
  if (mpi.rank() == 0) {
    if (s.test_accuracy) std::printf("test accuracy: %.4f\n", *s.test_accuracy);
    char throughput[160];
    if (s.images_per_second) {
      std::snprintf(throughput, sizeof throughput, "%.1f", *s.images_per_second);
    } else {
      std::snprintf(throughput, sizeof throughput, "none (no step after the %lld of --warmup-steps)",
                    static_cast<long long>(config.warmup_steps));
    }
    std::printf("steps: %lld, epoch %lld, throughput_img_per_s=%s\n", static_cast<long long>(s.steps_this_run),
                static_cast<long long>(s.end.epoch), throughput);
    std::printf("%s (rank 0)\n", LoaderWaitLine(s).c_str());
  }
  // A clean end must reach Prometheus, or the no-progress alert would read the silence of the
  // gone endpoints as a hang. (Not after a stop on request: SIGTERM's --preempt-grace is short.)
  std::fflush(stdout);
  LingerForScrape(job.metrics.get(), scrapes_at_end, config.metrics_linger, "the run's end");
  return kExitOk;
}

}  // namespace trainguard
