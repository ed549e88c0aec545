// `trainguard validate`.
#include <cstdio>

#include "diagnostics/labels/label_guard.h"
#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/image_doctor.h"
#include "launcher/metrics_report.h"
#include "launcher/signals.h"
#include "trainer/core/sharding.h"

namespace trainguard {

// `trainguard validate`: the label check of the first epoch's shards, then exit. With a
// metrics output, the label counts (and a failure) are pushed and written.
int Validate(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  job.watch->SetPhase("the start of the metrics");
  StartJobMetrics(config, job);
  SignalMetricsScope signal_metrics(job.metrics.get());
  LabelGuard guard(job.control, *job.train, LabelOptionsFor(config, *job.train), config.label_report);
  if (job.metrics)
    guard.set_on_report([&job](const LabelReport& report) { RecordLabels(*job.metrics, report, job.mpi.rank()); });
  CheckImagesFirst(config, job, guard);
  job.watch->SetPhase("the label validation");
  EpochPlan plan;
  plan.shard = TrainShard({job.train->size(), job.mpi.rank(), job.mpi.world(), config.seed, 0, true, {}});
  plan.unique_entries = UniqueShardEntries(job.train->size(), job.mpi.rank(), job.mpi.world());
  guard.OnEpochBegin(0, plan);
  FlushMetrics(job.metrics.get());
  if (job.mpi.rank() == 0) std::printf("label validation passed\n");
  return kExitOk;
}

}  // namespace trainguard
