// trainguard's entry point: MPI up, flags parsed, device and communicators chosen, datasets
// loaded, the subcommand run, and the outcome turned into an exit code (README: exit codes).
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <thread>

#include "launcher/cli.h"
#include "launcher/exit_codes.h"
#include "launcher/mpi_session.h"
#include "launcher/progress.h"
#include "trainer/core/errors.h"
#include "trainer/core/log.h"
#include "trainer/data/fashion_mnist.h"
#include "trainer/data/synthetic.h"
#include "trainer/dist/mpi_control_plane.h"
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
    case ErrorKind::kInternal: return kExitInternal;
  }
  return kExitInternal;
}

torch::Device PickDevice(const TrainConfig& config, const MpiSession& mpi) {
  const bool have_cuda = torch::cuda::is_available();
  if (config.device == "cuda" && !have_cuda) {
    throw ConfigError("--device cuda: no CUDA device is visible to this process; use --device cpu");
  }
  if (config.device == "cpu" || !have_cuda) return torch::kCPU;
  const auto count = static_cast<int>(torch::cuda::device_count());
  return {torch::kCUDA, static_cast<c10::DeviceIndex>(mpi.local_rank() % count)};
}

void SetThreads(const TrainConfig& config, const MpiSession& mpi) {
  int64_t threads = config.threads;
  if (threads == 0) {
    const auto cores = static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
    threads = std::max<int64_t>(1, cores / mpi.local_world());
  }
  torch::set_num_threads(static_cast<int>(threads));
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

struct Datasets {
  std::unique_ptr<Dataset> train;
  std::unique_ptr<Dataset> test;  // null for the synthetic set
};

Datasets LoadDatasets(const TrainConfig& c) {
  Datasets d;
  if (c.dataset == "synthetic") {
    SyntheticOptions o;
    o.samples = c.synthetic_samples;
    o.classes = c.synthetic_classes;
    o.seed = c.seed;
    d.train = MakeSyntheticDataset(o);
  } else {
    d.train = LoadFashionMnist(c.data_dir, Split::kTrain, c.train_samples);
    if (c.evaluate) d.test = LoadFashionMnist(c.data_dir, Split::kTest, c.test_samples);
  }
  return d;
}

// Runs `train`; returns the exit code. Errors before training are agreed across ranks, so
// every rank returns; an unagreed error during training aborts the whole job instead, since
// the other ranks may be blocked in a collective waiting for this one.
int RunTrain(const Command& command, MpiSession& mpi) {
  const TrainConfig& config = command.train;
  if (mpi.rank() == 0) std::printf("# trainguard train: resolved configuration (world %d)\n%s\n", mpi.world(), command.resolved.c_str());
  std::fflush(stdout);
  MpiControlPlane control(MPI_COMM_WORLD);
  Datasets data;
  std::unique_ptr<DataPlane> plane;
  std::unique_ptr<Trainer> trainer;
  ProgressPrinter progress(mpi.rank() == 0, config.epochs, config.log_every);
  try {
    torch::Device device = torch::kCPU;
    RunAgreed(control, [&] {
      SetThreads(config, mpi);
      device = PickDevice(config, mpi);
      data = LoadDatasets(config);
    });
    plane = MakeDataPlane(device, mpi);
    trainer = std::make_unique<Trainer>(config, *data.train, data.test.get(), TrainContext{control, *plane, device, &progress});
    if (mpi.rank() == 0) LogLine("training on " + device.str() + ", " + std::to_string(data.train->size()) + " samples");
  } catch (const std::exception& e) {
    if (!dynamic_cast<const PeerError*>(&e)) LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
  try {
    const TrainSummary s = trainer->Run();
    if (mpi.rank() == 0) {
      if (s.test_accuracy) std::printf("test accuracy: %.4f\n", *s.test_accuracy);
      std::printf("steps: %lld, epoch %lld, throughput_img_per_s=%.1f\n", static_cast<long long>(s.steps_this_run),
                  static_cast<long long>(s.end.epoch), s.images_per_second);
    }
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    // Errors raised through RunAgreed (PeerError here, CheckpointError on the writing rank) are
    // known to every rank; anything else may leave peers blocked in a collective.
    const bool agreed = dynamic_cast<const PeerError*>(&e) || dynamic_cast<const CheckpointError*>(&e);
    if (!agreed && mpi.world() > 1) mpi.AbortJob(ExitCodeOf(e));
    return ExitCodeOf(e);
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
  }
  return kExitInternal;
}
