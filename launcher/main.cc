// trainguard's entry point: MPI up, flags parsed, the job prepared, the subcommand run, and the
// outcome turned into an exit code (README: exit codes).
#include <torch/torch.h>

#include <cstdio>

#include "diagnostics/labels/label_guard.h"
#include "launcher/cli.h"
#include "launcher/exit_codes.h"
#include "launcher/job.h"
#include "launcher/progress.h"
#include "trainer/core/errors.h"
#include "trainer/core/log.h"
#include "trainer/core/sharding.h"
#include "trainer/dist/mpi_data_plane.h"
#include "trainer/train.h"
#ifdef TRAINGUARD_WITH_NCCL
#include "trainer/dist/nccl_data_plane.h"
#endif

namespace trainguard {
namespace {

// The exit code of an error; a peer's agreed failure gives that failure's code, so that every
// rank of the job exits with the same one.
int ExitCodeOf(const std::exception& e) {
  switch (KindOf(e)) {
    case ErrorKind::kConfig: return kExitUsage;
    case ErrorKind::kData: return kExitData;
    case ErrorKind::kCheckpoint: return kExitCheckpoint;
    case ErrorKind::kComm: return kExitComm;
    case ErrorKind::kPeer: return kExitPeer;
    case ErrorKind::kLabels: return kExitLabels;
    case ErrorKind::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

// Errors every rank raises together: agreed ones (RunAgreed: PeerError, and CheckpointError on
// the writing rank) and label verdicts (the same report on every rank). Anything else may leave
// peers blocked in a collective.
bool RaisedOnEveryRank(const std::exception& e) {
  return dynamic_cast<const PeerError*>(&e) || dynamic_cast<const CheckpointError*>(&e) ||
         dynamic_cast<const LabelError*>(&e);
}

// Logs the error and returns its exit code; aborts the whole job when peers may be waiting.
int Fail(const std::exception& e, MpiSession& mpi) {
  // A label verdict is the same everywhere: rank 0 says it once.
  if (!dynamic_cast<const LabelError*>(&e) || mpi.rank() == 0) LogLine(std::string("error: ") + e.what());
  if (!RaisedOnEveryRank(e) && mpi.world() > 1) mpi.AbortJob(ExitCodeOf(e));
  return ExitCodeOf(e);
}

std::unique_ptr<DataPlane> MakeDataPlane(torch::Device device, const MpiSession& mpi) {
  if (device.is_cuda()) {
#ifdef TRAINGUARD_WITH_NCCL
    return MakeNcclDataPlane(MPI_COMM_WORLD, device.index());
#else
    throw ConfigError("--device cuda: this build has no NCCL data plane; rebuild against a CUDA Torch");
#endif
  }
  if (mpi.world() == 1) return std::make_unique<SoloDataPlane>();
  return std::make_unique<MpiDataPlane>(MPI_COMM_WORLD);
}

void PrintResolved(const Command& command, const MpiSession& mpi) {
  if (mpi.rank() != 0) return;
  std::printf("# trainguard: resolved configuration (world %d)\n%s\n", mpi.world(), command.resolved.c_str());
  std::fflush(stdout);
}

int RunTrain(const Command& command, MpiSession& mpi) {
  const TrainConfig& config = command.train;
  PrintResolved(command, mpi);
  Job job(mpi);
  std::unique_ptr<DataPlane> plane;
  std::unique_ptr<LabelGuard> labels;
  std::unique_ptr<Trainer> trainer;
  ProgressPrinter progress(mpi.rank() == 0, config.epochs, config.log_every);
  try {
    PrepareJob(config, job);
    plane = MakeDataPlane(job.device, mpi);
    TrainContext context{job.control, *plane, job.device, {}};
    if (config.validate_labels) {
      labels = std::make_unique<LabelGuard>(job.control, *job.train, LabelOptionsFor(config, *job.train), config.label_report);
      context.observers.push_back(labels.get());
    }
    context.observers.push_back(&progress);
    trainer = std::make_unique<Trainer>(config, *job.train, job.test.get(), context);
    if (mpi.rank() == 0) LogLine("training on " + job.device.str() + ", " + std::to_string(job.train->size()) + " samples");
    const TrainSummary s = trainer->Run();
    if (mpi.rank() == 0) {
      if (s.test_accuracy) std::printf("test accuracy: %.4f\n", *s.test_accuracy);
      std::printf("steps: %lld, epoch %lld, throughput_img_per_s=%.1f\n", static_cast<long long>(s.steps_this_run),
                  static_cast<long long>(s.end.epoch), s.images_per_second);
    }
    return kExitOk;
  } catch (const std::exception& e) {
    return Fail(e, mpi);
  }
}

// `trainguard validate`: the label check of the first epoch's shards, then exit.
int RunValidate(const Command& command, MpiSession& mpi) {
  const TrainConfig& config = command.train;
  PrintResolved(command, mpi);
  Job job(mpi);
  try {
    PrepareJob(config, job);
    LabelGuard guard(job.control, *job.train, LabelOptionsFor(config, *job.train), config.label_report);
    EpochPlan plan;
    plan.shard = TrainShard({job.train->size(), mpi.rank(), mpi.world(), config.seed, 0, true});
    guard.OnEpochBegin(0, plan);
    if (mpi.rank() == 0) std::printf("label validation passed\n");
    return kExitOk;
  } catch (const std::exception& e) {
    return Fail(e, mpi);
  }
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  using namespace trainguard;
  MpiSession mpi(&argc, &argv);
  if (mpi.world() > 1) SetLogRank(mpi.rank());
  const Command command = ParseCommandLine(argc, argv);
  switch (command.kind) {
    case Command::Kind::kExit:
      if (mpi.rank() == 0) std::fputs(command.message.c_str(), command.exit_code == 0 ? stdout : stderr);
      return command.exit_code;
    case Command::Kind::kTrain:
      return RunTrain(command, mpi);
    case Command::Kind::kValidate:
      return RunValidate(command, mpi);
  }
  return kExitInternal;
}
