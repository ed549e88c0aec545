// trainguard's entry point: flags parsed, MPI up (for train and validate), the job prepared, the
// subcommand run, and the outcome turned into an exit code (README: exit codes).
#include <torch/torch.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "diagnostics/faults/diagnose.h"
#include "diagnostics/faults/fault_guard.h"
#include "diagnostics/faults/fault_injection.h"
#include "diagnostics/faults/fault_watch.h"
#include "diagnostics/labels/label_guard.h"
#include "launcher/cli.h"
#include "launcher/exit_codes.h"
#include "launcher/job.h"
#include "launcher/metrics_report.h"
#include "launcher/progress.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/core/log.h"
#include "trainer/core/sharding.h"
#include "trainer/data/fashion_mnist.h"
#include "trainer/data/image_folder.h"
#include "trainer/predict.h"
#include "trainer/train.h"
#ifdef TRAINGUARD_WITH_NCCL
#include "trainer/comm/nccl_data_plane.h"
#endif

namespace trainguard {
namespace {

// The kind of any error: Torch's distributed errors (NCCL, c10d stores) are communication
// failures; trainguard's own errors say their kind; anything else is internal.
ErrorKind KindOfAny(const std::exception& e) {
  if (dynamic_cast<const c10::DistError*>(&e)) return ErrorKind::kComm;
  return KindOf(e);
}

// The exit code of an error; a peer's failure gives that failure's code, so that every rank of
// the job exits with the code of the cause.
int ExitCodeOf(const std::exception& e) {
  switch (KindOfAny(e)) {
    case ErrorKind::kConfig:
      return kExitUsage;
    case ErrorKind::kData:
      return kExitData;
    case ErrorKind::kCheckpoint:
      return kExitCheckpoint;
    case ErrorKind::kComm:
      return kExitComm;
    case ErrorKind::kPeer:
      return kExitPeer;
    case ErrorKind::kLabels:
      return kExitLabels;
    case ErrorKind::kBatchData:
      return kExitBatchData;
    case ErrorKind::kDeviceAssert:
      return kExitDeviceAssert;
    case ErrorKind::kNonFinite:
      return kExitNonFinite;
    case ErrorKind::kStall:
      return kExitStall;
    case ErrorKind::kInternal:
      return kExitInternal;
  }
  return kExitInternal;
}

// The failure kind of trainguard_failures_total: the cause's kind on the rank that failed,
// "peer" on the ranks that stop because of it.
std::string FailureKindOf(const std::exception& e) {
  if (dynamic_cast<const PeerError*>(&e)) return "peer";
  const ErrorKind kind = KindOfAny(e);
  return ErrorKindName(kind == ErrorKind::kBatchData ? ErrorKind::kLabels : kind);  // a target out of range
}

// Ends this rank after a failure. Unless the failure came from a peer, the others are told over
// the fault channel (a notice to a rank that already knows, because the failure was agreed, is
// drained unread); the failure is counted in the metrics and pushed; then the ranks wait for each
// other (bounded by --fault-grace) so that no rank is killed by the launcher while it still
// writes its bundle or pushes; then the data plane is aborted
// (bounded) and the process ends without MPI_Finalize, since collectives may be left pending.
[[noreturn]] void StopRank(const std::exception& e, Job& job, double grace_s) {
  const int code = ExitCodeOf(e);
  const bool verdict_everywhere = dynamic_cast<const LabelError*>(&e) != nullptr;
  if (!verdict_everywhere || job.mpi.rank() == 0) LogLine(std::string("error: ") + e.what());
  const bool tell = job.mpi.world() > 1 && !dynamic_cast<const PeerError*>(&e);
  if (tell) job.faults.Tell(static_cast<int>(KindOfAny(e)), 0, e.what());
  // Before the rendezvous: once one rank exits, the launcher may end the others.
  ReportFailure(job.metrics.get(), FailureKindOf(e), code);
  if (job.mpi.world() > 1 && !job.faults.Rendezvous(grace_s)) {
    LogLine("some ranks did not reach the end within --fault-grace");
  }
  if (job.data) job.data->Abort(5.0);
  LogLine("exiting with code " + std::to_string(code));
  std::fflush(nullptr);
  std::_Exit(code);
}

// The gradient plane: NCCL on CUDA (unless --data-plane mpi), MPI otherwise (CUDA tensors
// staged through host memory), nothing to reduce in a world of one on MPI.
std::unique_ptr<DataPlane> MakeDataPlane(const TrainConfig& config, torch::Device device, const MpiSession& mpi,
                                         ControlPlane& control, WaitGuard* guard) {
  if (UsesNccl(config, device)) {
#ifdef TRAINGUARD_WITH_NCCL
    return MakeNcclDataPlane(control, {device.index(), config.step_timeout, config.store_addr}, guard);
#else
    throw ConfigError(
        "--device cuda: this build has no NCCL data plane; rebuild against a CUDA Torch, or pass "
        "--data-plane mpi");
#endif
  }
  if (mpi.world() == 1) return std::make_unique<SoloDataPlane>();
  auto plane = std::make_unique<MpiDataPlane>(MPI_COMM_WORLD);
  plane->set_wait_guard(guard);
  return plane;
}

// Rank 0 prints the settings that were given (flags, config file, environment) and writes the
// whole resolved configuration to --run-config, a file a bug report can attach; a file that
// cannot be written is a warning, not a reason to stop the job.
void PrintResolved(const Command& command, const MpiSession& mpi) {
  if (mpi.rank() != 0) return;
  const std::string& file = command.train.run_config;
  std::printf("# trainguard (world %d), settings given:\n%s", mpi.world(),
              command.resolved_set.empty() ? "# none: every setting has its default\n" : command.resolved_set.c_str());
  if (!file.empty()) {
    try {
      WriteFileAtomically(file, "# trainguard: the whole resolved configuration (world " + std::to_string(mpi.world()) +
                                    ")\n" + command.resolved);
      std::printf("# the whole configuration: %s\n", file.c_str());
    } catch (const std::exception& e) {
      LogLine(std::string("warning: the configuration could not be written to --run-config ") + file + ": " + e.what());
    }
  }
  std::printf("\n");
  std::fflush(stdout);
}

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
  o.model.num_classes = labels.num_classes;
  o.model.ignore_index = c.ignore_index;
  o.model.in_channels = train.shape().channels;
  o.model.image_size = train.shape().height;
  o.model.width = c.width;
  return o;
}

// Prints the configuration, prepares the job (collectively) and runs `body(job)`; any error
// ends this rank through StopRank.
template <typename Body>
int RunJob(const Command& command, MpiSession& mpi, Body body) {
  PrintResolved(command, mpi);
  Job job(mpi);
  // Every wait for other ranks, in every subcommand, gives up on a peer's fault notice or at
  // --step-timeout; a rank stuck in a step's computation is ended by the watchdog.
  job.watch = std::make_unique<FaultWatch>(job.faults, command.train.step_timeout,
                                           std::min(command.train.fault_grace, 5.0), [&job](const std::string&) {
                                             ReportFailure(job.metrics.get(), "stall", kExitStall);
                                             std::fflush(nullptr);
                                             std::_Exit(kExitStall);
                                           });
  job.control.set_wait_guard(job.watch.get());
  try {
    job.watch->SetPhase("the set-up of the job");
    PrepareJob(command.train, job);
    return body(job);
  } catch (const std::exception& e) {
    StopRank(e, job, command.train.fault_grace);
  }
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

int Train(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  MpiSession& mpi = job.mpi;
  job.watch->SetPhase("the set-up of the data plane");
  job.data = MakeDataPlane(config, job.device, mpi, job.control, job.watch.get());
  job.watch->SetPhase("the start of the metrics");
  job.metrics = MakeMetrics(config, mpi.rank(), mpi.local_rank(), mpi.world());
  StartMetrics(job.metrics.get(), job.control);
  if (job.metrics) {
    job.metrics->SetRunInfo({TRAINGUARD_VERSION, UsesNccl(config, job.device) ? "nccl" : "mpi",
                             job.device.is_cuda() ? "cuda" : "cpu", "fp32"});
  }
  DataPlane& plane = *job.data;
  const LabelCheckOptions label_options = LabelOptionsFor(config, *job.train);
  std::vector<FaultSpec> injected;
  for (const auto& spec : config.inject_faults) injected.push_back(ParseFaultSpec(spec));

  LabelGuard labels(job.control, *job.train, label_options, config.label_report);
  ProgressPrinter progress(mpi.rank() == 0, config.epochs, config.log_every);
  FaultGuard faults(FaultOptionsFor(command, *job.train, label_options), job.faults, *job.watch, *job.train,
                    job.device);
  FaultInjector injector(injected, mpi.rank());
  TrainContext context{job.control, plane, job.device, {}, {&faults, &injector}};
  if (config.validate_labels) context.observers.push_back(&labels);
  context.observers.push_back(&progress);
  std::optional<MetricsObserver> metrics_observer;
  if (job.metrics) {
    labels.set_on_report([&job](const LabelReport& report) { RecordLabels(*job.metrics, report); });
    context.observers.push_back(&metrics_observer.emplace(*job.metrics));
  }

  Trainer trainer(config, *job.train, job.test.get(), context);
  if (mpi.rank() == 0)
    LogLine("training on " + job.device.str() + ", " + std::to_string(job.train->size()) + " samples");
  const TrainSummary s = trainer.Run();
  ReportSkipped(*job.train, job.control, job.metrics.get());
  plane.Shutdown();
  FlushMetrics(job.metrics.get());
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
  return kExitOk;
}

// `trainguard validate`: the label check of the first epoch's shards, then exit.
int Validate(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  LabelGuard guard(job.control, *job.train, LabelOptionsFor(config, *job.train), config.label_report);
  job.watch->SetPhase("the label validation");
  EpochPlan plan;
  plan.shard = TrainShard({job.train->size(), job.mpi.rank(), job.mpi.world(), config.seed, 0, true});
  guard.OnEpochBegin(0, plan);
  if (job.mpi.rank() == 0) std::printf("label validation passed\n");
  return kExitOk;
}

// `trainguard predict`: the model of --checkpoint over the --data-dir images; rank 0 writes
// HW3's submission CSV to --predictions.
int Predict(const Command& command, Job& job) {
  const TrainConfig& config = command.train;
  if (config.checkpoint.empty()) throw ConfigError("predict needs --checkpoint FILE, a checkpoint written by train");
  Hw3Net model = MakeModel(config, *job.train);
  LoadModelWeights(config.checkpoint, *model);
  model->to(job.device);
  job.watch->SetPhase("the prediction");
  const auto predictions =
      PredictAll(model, *job.train, job.control, job.device, config.batch_size, LoaderFor(config, job.device));
  if (job.mpi.rank() == 0) {
    WriteFileAtomically(config.predictions, SubmissionCsv(*job.train, predictions));
    std::printf("%s", PredictionSummary(*job.train, predictions).c_str());
    std::printf("wrote %zu predictions to %s\n", predictions.size(), config.predictions.c_str());
  }
  return kExitOk;
}

// `trainguard diagnose BUNDLE`: no MPI; prints the summary, writes BUNDLE/diagnosis.json.
int RunDiagnose(const Command& command) {
  setenv("CUDA_LAUNCH_BLOCKING", "1", 1);  // before anything touches CUDA
  try {
    const Bundle bundle = ReadBundle(command.bundle);
    std::vector<FaultSpec> injected;
    for (const auto& spec : command.train.inject_faults) injected.push_back(ParseFaultSpec(spec));
    DelayDiagnosis(injected, bundle.meta.rank, bundle.meta.global_step);
    const Diagnosis d = Diagnose(bundle);
    std::printf("%s", FormatDiagnosis(d).c_str());
    WriteFileAtomically(command.bundle + "/diagnosis.json", DiagnosisJson(d));
    std::printf("  report: %s/diagnosis.json\n", command.bundle.c_str());
    std::fflush(stdout);
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
}

// `trainguard make-folder OUT`: no MPI; a food-11-style JPEG folder from Fashion-MNIST.
int RunMakeFolder(const Command& command) {
  const TrainConfig& c = command.train;
  try {
    const int64_t files = WriteFood11Folder(ReadFashionMnist(c.data_dir, Split::kTrain, c.train_samples),
                                            ReadFashionMnist(c.data_dir, Split::kTest, c.test_samples), command.bundle);
    std::printf("wrote %lld JPEG files under %s (training/, validation/, test/)\n", static_cast<long long>(files),
                command.bundle.c_str());
    return kExitOk;
  } catch (const std::exception& e) {
    LogLine(std::string("error: ") + e.what());
    return ExitCodeOf(e);
  }
}

// SIGTERM ends every subcommand with the peer-failure code and a line that says why: mpirun
// stops the surviving ranks with it when one dies, and schedulers (Slurm, Kubernetes) end jobs
// with it.
char g_term_message[200];
extern "C" void OnTerminate(int) {
  ssize_t ignored = ::write(STDERR_FILENO, g_term_message, std::strlen(g_term_message));
  (void)ignored;
  std::_Exit(kExitPeer);
}

void ExitOnTerminate(int rank) {
  std::snprintf(g_term_message, sizeof g_term_message,
                "[rank %d] stopped by SIGTERM: the launcher ends the job, usually because another rank died "
                "(or the scheduler ends it); exiting with code %d\n",
                rank, static_cast<int>(kExitPeer));
  std::signal(SIGTERM, OnTerminate);
}

}  // namespace
}  // namespace trainguard

int main(int argc, char** argv) {
  using namespace trainguard;
  const Command command = ParseCommandLine(argc, argv);
  if (command.kind == Command::Kind::kDiagnose) return RunDiagnose(command);
  if (command.kind == Command::Kind::kMakeFolder) return RunMakeFolder(command);
  MpiSession mpi(&argc, &argv);
  if (mpi.world() > 1) SetLogRank(mpi.rank());
  switch (command.kind) {
    case Command::Kind::kExit:
      if (mpi.rank() == 0) std::fputs(command.message.c_str(), command.exit_code == 0 ? stdout : stderr);
      return command.exit_code;
    case Command::Kind::kTrain:
      ExitOnTerminate(mpi.rank());
      return RunJob(command, mpi, [&](Job& job) { return Train(command, job); });
    case Command::Kind::kValidate:
      ExitOnTerminate(mpi.rank());
      return RunJob(command, mpi, [&](Job& job) { return Validate(command, job); });
    case Command::Kind::kPredict:
      ExitOnTerminate(mpi.rank());
      return RunJob(command, mpi, [&](Job& job) { return Predict(command, job); });
    case Command::Kind::kDiagnose:
    case Command::Kind::kMakeFolder:
      break;  // handled before MPI
  }
  return kExitInternal;
}
