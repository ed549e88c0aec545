// `trainguard validate`.
#include <cstdio>

#include "diagnostics/labels/label_guard.h"
#include "launcher/commands.h"
#include "launcher/exit_codes.h"
#include "launcher/image_doctor.h"
#include "trainer/core/sharding.h"

namespace trainguard {

// `trainguard validate`: the label check of the first epoch's shards, then exit.
int Validate(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  LabelGuard guard(job.control, *job.train, LabelOptionsFor(config, *job.train), config.label_report);
  CheckImagesFirst(config, job, guard);
  job.watch->SetPhase("the label validation");
  EpochPlan plan;
  plan.shard = TrainShard({job.train->size(), job.mpi.rank(), job.mpi.world(), config.seed, 0, true});
  guard.OnEpochBegin(0, plan);
  if (job.mpi.rank() == 0) std::printf("label validation passed\n");
  return kExitOk;
}

}  // namespace trainguard
