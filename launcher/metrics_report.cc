// The launcher's side of the metrics (see metrics_report.h).
#include "launcher/metrics_report.h"

#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdio>
#include <thread>

#include "diagnostics/faults/deadlines.h"
#include "trainer/core/errors.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/log.h"
#include "trainer/step_errors.h"

namespace trainguard {
namespace {

// Seconds between two readings of a GPU's health: a few per scrape at the shipped 15 s interval.
constexpr double kGpuHealthPeriodS = 5;

void Warn(const std::string& warning) {
  if (!warning.empty()) LogLine("warning: " + warning);
}

// Metrics for this rank, or null when no metrics output is asked for.
std::unique_ptr<Metrics> MakeMetrics(const TrainConfig& c, int rank, int local_rank, int world) {
  if (c.metrics_port < 0 && c.pushgateway.empty() && c.metrics_textfile.empty()) return nullptr;
  MetricsOptions o;
  o.job = c.metrics_job;
  o.rank = rank;
  o.local_rank = local_rank;
  o.world_size = world;
  o.port_base = static_cast<int>(c.metrics_port);
  o.bind = c.metrics_bind;
  o.required = c.metrics_required;
  o.pushgateway_url = c.pushgateway;
  o.push_timeout_s = c.push_timeout;
  o.textfile_dir = c.metrics_textfile;
  o.targets_file = c.metrics_targets;
  try {
    return std::make_unique<Metrics>(o);
  } catch (const MetricsError& e) {
    throw ConfigError(std::string("metrics: ") + e.what() +
                      " (see --metrics-job, --metrics-bind, --metrics-port, --pushgateway, --push-timeout)");
  }
}

// Collective: starts the endpoint and, on rank 0, writes the targets file (see StartJobMetrics).
void StartMetrics(Metrics* metrics, ControlPlane& control) {
  std::string endpoint;
  if (metrics != nullptr) {
    try {
      Warn(metrics->Start());
      Warn(metrics->CheckTextfile());
    } catch (const MetricsError& e) {
      throw ConfigError(std::string(e.what()) + " (--metrics-required)");
    }
    if (metrics->port() > 0) {
      const Target self = metrics->SelfTarget();
      endpoint = self.host + ":" + std::to_string(self.port);
    }
  }
  // Every rank takes part, with or without an endpoint, so the gather always matches.
  const auto endpoints = control.AllGather(endpoint);
  if (metrics == nullptr || control.rank() != 0 || metrics->options().targets_file.empty()) return;
  std::vector<Target> targets;
  for (int r = 0; r < static_cast<int>(endpoints.size()); ++r) {
    const std::string& e = endpoints[static_cast<size_t>(r)];
    const auto colon = e.rfind(':');
    if (colon == std::string::npos) continue;  // that rank serves no endpoint
    targets.push_back({e.substr(0, colon), std::stoi(e.substr(colon + 1)), r});
  }
  Warn(metrics->WriteTargetsFile(targets));
}

}  // namespace

void StartJobMetrics(const TrainConfig& config, Job& job) {
  job.metrics = MakeMetrics(config, job.mpi.rank(), job.mpi.local_rank(), job.mpi.world());
  job.metrics_linger_s = config.metrics_linger;
  if (job.metrics) {
    job.metrics->SetProgressDeadline(config.step_timeout + config.fault_grace);
    // Every phase starts at --step-timeout; the fault watch reports each learned change.
    const Deadlines& deadlines = job.watch->deadlines();
    for (int p = 0; p < kWaitPhases; ++p) {
      const auto phase = static_cast<WaitPhase>(p);
      job.metrics->SetWaitDeadline(WaitPhaseLabel(phase), deadlines.Of(phase));
    }
  }
  StartMetrics(job.metrics.get(), job.control);
}

void RecordLabels(Metrics& metrics, const LabelReport& report, int rank) {
  if (rank != 0) return;  // the counts are the whole set's: once per job, or sums over ranks multiply them
  const auto& n = report.counts;
  metrics.SetLabelCounts({n[static_cast<int>(LabelKind::kValid)], n[static_cast<int>(LabelKind::kIgnored)],
                          n[static_cast<int>(LabelKind::kNegative)], n[static_cast<int>(LabelKind::kTooLarge)],
                          n[static_cast<int>(LabelKind::kUnparsable)]},
                         report.histogram);
}

void FlushMetrics(const Metrics* metrics) {
  if (metrics == nullptr) return;
  Warn(metrics->WriteTextfile());  // first: it is quick, and a rank may be killed soon after a failure
  Warn(metrics->Push());
}

void LingerForScrape(const Metrics* metrics, int64_t scrapes_before, double linger_s, const std::string& what) {
  if (metrics == nullptr || metrics->port() == 0 || scrapes_before == 0 || linger_s <= 0) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(linger_s);
  while (metrics->scrapes() == scrapes_before) {
    if (StopHurried() || std::chrono::steady_clock::now() > deadline) {
      LogLine("the metrics endpoint was not scraped again within --metrics-linger: " + what +
              " may not be in Prometheus (a Pushgateway or textfile keeps it)");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::unique_ptr<GpuWatch> StartGpuWatch(const Job& job) {
  if (!job.device.is_cuda()) return nullptr;
  const std::string bus_id = GpuBusId(job.device);
  std::string why;
  std::unique_ptr<GpuHealthReader> reader = GpuHealthReader::Open(bus_id, GpuHealthReader::kNvmlLibrary, &why);
  if (!reader) {
    LogLine("GPU health is not read: " + why);
    return nullptr;
  }
  return std::make_unique<GpuWatch>(std::move(reader), job.metrics.get(), kGpuHealthPeriodS);
}

void ReportFailure(Metrics* metrics, const std::string& kind, int exit_code) {
  if (metrics == nullptr) return;
  metrics->OnFailure(kind, exit_code);
  FlushMetrics(metrics);
}

void MetricsObserver::OnEpochBegin(int64_t, EpochPlan&) {
  last_ = epoch_start_ = Clock::now();
  epoch_images_ = 0;
}

void MetricsObserver::OnStepEnd(const StepReport& report) {
  if (!training_) metrics_.SetPhase("training");
  training_ = true;
  const auto now = Clock::now();
  metrics_.OnStep(std::chrono::duration<double>(now - last_).count(), report.images, report.loss, report.loader_wait_s,
                  report.allreduce_wait_s, report.ignored_targets);
  last_ = now;
  epoch_images_ += report.images;
}

void MetricsObserver::OnEpochEnd(const EpochReport& report) {
  const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start_).count();
  std::optional<double> eval;
  if (report.test_accuracy >= 0) eval = report.test_accuracy;
  std::optional<double> train;
  if (report.train_accuracy >= 0) train = report.train_accuracy;
  metrics_.OnEpochEnd(report.epoch + 1, report.mean_loss, train, eval, seconds > 0 ? epoch_images_ / seconds : 0);
  if (device_.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device_.index());
    const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    metrics_.SetGpuMemory(stats.allocated_bytes[aggregate].current, stats.reserved_bytes[aggregate].current);
  }
  FlushMetrics(&metrics_);
}

void MetricsObserver::OnCheckpoint(int64_t, double seconds, int64_t bytes) { metrics_.OnCheckpoint(seconds, bytes); }

void MetricsObserver::OnPhase(Phase phase) {
  training_ = phase == Phase::kTraining;
  switch (phase) {
    case Phase::kStarting:
      return metrics_.SetPhase("starting");
    case Phase::kValidating:
      return metrics_.SetPhase("validating");
    case Phase::kEvaluating:
      return metrics_.SetPhase("evaluating");
    case Phase::kCheckpointing:
      return metrics_.SetPhase("checkpointing");
    case Phase::kTraining:
      return metrics_.SetPhase("training");
  }
}

void MetricsObserver::OnProgress() { metrics_.OnProgress(); }

}  // namespace trainguard
