// Fault capture on a failing rank (see fault_guard.h).
#include "diagnostics/faults/fault_guard.h"

#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "trainer/core/atomic_file.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/log.h"

extern char** environ;

namespace trainguard {
namespace {

// The environment for the child: this one without the MPI launcher's variables (the child is
// not a rank of the job), plus CUDA_LAUNCH_BLOCKING=1.
std::vector<std::string> ChildEnvironment() {
  std::vector<std::string> env{"CUDA_LAUNCH_BLOCKING=1"};
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (entry.rfind("OMPI_", 0) == 0 || entry.rfind("PMIX_", 0) == 0 || entry.rfind("CUDA_LAUNCH_BLOCKING=", 0) == 0) {
      continue;
    }
    env.push_back(entry);
  }
  return env;
}

}  // namespace

FaultGuard::FaultGuard(FaultOptions options, FaultChannel& channel, FaultWatch& watch, const SampleCatalog& catalog,
                       torch::Device device)
    : options_(std::move(options)), channel_(channel), watch_(watch), catalog_(catalog), device_(device) {}

// GPU runs: the first host copy is taken before the first step, so that a bundle written at the
// first step of a run (a fresh start or a resume) carries weights too.
void FaultGuard::OnModelReady(int64_t global_step, torch::nn::Module& model) {
  history_.Ready(global_step, model);
  if (!device_.is_cuda()) return;
  host_weights_ = HostWeights(model);
  host_weights_step_ = global_step;
}

void FaultGuard::OnPhase(Phase phase, const std::string& what) {
  switch (phase) {
    case Phase::kStarting:
      return watch_.SetPhase(what, WaitPhase::kStarting);
    case Phase::kValidating:
      return watch_.SetPhase(what, WaitPhase::kValidating);
    case Phase::kEvaluating:
      return watch_.SetPhase(what, WaitPhase::kEvaluating);
    case Phase::kCheckpointing:
      return watch_.SetPhase(what, WaitPhase::kCheckpointing);
    case Phase::kTraining:  // within a failed step: the agreement on its bad samples
      return watch_.SetPhase(what, WaitPhase::kAgreeing);
  }
}

void FaultGuard::OnProgress() { watch_.Poll(); }

void FaultGuard::BeforeStep(const StepReport& where, Batch&) {
  watch_.Arm(where.global_step);
  history_.StepStarts();
}

void FaultGuard::AfterStep(const StepReport& where, torch::nn::Module& model) {
  watch_.EndStep();
  history_.StepPassed(where.global_step, model);
  if (device_.is_cuda() && where.global_step % options_.host_copy_every == 0) {
    host_weights_ = HostWeights(model);
    host_weights_step_ = where.global_step;
  }
}

Bundle FaultGuard::Capture(const StepFailure& f) const {
  Bundle b;
  BundleMeta& m = b.meta;
  m = options_.model;
  m.kind = ErrorKindName(f.kind);
  m.error = f.what;
  m.rank = channel_.rank();
  m.world = channel_.world();
  m.epoch = f.where.epoch;
  m.step_in_epoch = f.where.step_in_epoch;
  m.global_step = f.where.global_step;
  m.device = device_.str();
  m.config = options_.config_text;
  for (int64_t i : f.batch->indices) {
    m.indices.push_back(i);
    m.sources.push_back(catalog_.source(i));
    m.raw_labels.push_back(catalog_.label(i).text);
  }
  // Out of memory: no tensors. Copying and serialising them needs the memory that ran out (a
  // failed allocation inside the serialiser's destructor aborts the process); the samples are
  // named above and the error carries the memory figures.
  if (f.kind == ErrorKind::kOutOfMemory) return b;
  b.images = f.batch->images;
  b.targets = f.batch->targets;
  b.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  m.global_valid_targets = f.global_valid_targets;
  m.weights_ready_step = history_.ready_step();
  m.last_good_step = history_.last_good_step();
  m.last_good_norms = history_.LastGoodNorms();
  // The optimizer has not stepped: the model holds the step's own weights. On a GPU they can be
  // read unless the device is lost (a device-side assert or a GPU fault poisons the context).
  const bool device_lost = f.kind == ErrorKind::kDeviceAssert || f.kind == ErrorKind::kGpuFault ||
                           (f.kind == ErrorKind::kInternal && device_.is_cuda());
  if (!device_lost) {
    try {
      b.weights = HostWeights(*f.model);
      // The forward pass updated BatchNorm's running statistics: the step started from these.
      for (auto& [name, t] : history_.BuffersAtStart()) b.weights[name] = t;
      m.weights_from = "the failing step's own weights";
      m.weights_own = true;
      return b;
    } catch (const std::exception& e) {
      LogLine("the failing step's weights could not be copied from " + device_.str() + " (" + FirstLine(e.what()) +
              "); the bundle gets the last host copy");
    }
  }
  b.weights = host_weights_;
  m.weights_from = host_weights_step_ == 0 ? "host copy of the initial weights"
                                           : "host copy after step " + std::to_string(host_weights_step_);
  return b;
}

void FaultGuard::OnStepFailed(const StepFailure& f) {
  // From here on this rank is stopping, unless a quarantine lets the run go on: a SIGTERM or the
  // watchdog no longer decides its exit.
  const bool goes_on = f.quarantine && f.agreed;
  if (!goes_on && !ClaimExit()) StandAside("the failure of step " + std::to_string(f.where.global_step));
  watch_.Disarm();
  if (!f.culprit) return;
  if (options_.on_found && !f.quarantine) options_.on_found(f.kind);
  const std::string dir =
      options_.bundle_dir + "/step" + std::to_string(f.where.global_step) + "-rank" + std::to_string(channel_.rank());
  const std::string doing = "writing the repro bundle of step " + std::to_string(f.where.global_step) +
                            " and diagnosing it" + (f.quarantine ? " to set its bad samples aside" : "");
  if (goes_on) {
    watch_.SetPhase(doing, WaitPhase::kAgreeing);
  } else {
    watch_.Stopping(doing);
  }
  // The others are told now, unless they know (an agreed failure) or the failure may not stand.
  if (!f.agreed && !f.quarantine) {
    channel_.Tell(
        static_cast<int>(f.kind), f.where.global_step,
        "step " + std::to_string(f.where.global_step) + ": " + FirstLine(f.what) + " (repro bundle " + dir + ")");
  }
  try {
    ::mkdir(options_.bundle_dir.c_str(), 0755);
    WriteBundle(dir, Capture(f));
    if (!options_.environment.empty()) WriteFileAtomically(dir + "/environment.txt", options_.environment);
    const std::vector<std::string> gpu_events =
        options_.gpu_events ? options_.gpu_events() : std::vector<std::string>{};
    if (!gpu_events.empty()) {
      std::string text;
      for (const std::string& line : gpu_events) text += line + "\n";
      WriteFileAtomically(dir + "/gpu_events.txt", text);
    }
    bundle_ = dir;
    LogLine("repro bundle written: " + dir);
  } catch (const std::exception& e) {
    LogLine(std::string("error: the repro bundle could not be written to ") + dir + ": " + e.what());
    return;
  }
  // Memory and hardware failures are not the batch's: a re-run would meet the same full or broken
  // device and name no sample.
  const bool batch_may_be_at_fault = f.kind != ErrorKind::kOutOfMemory && f.kind != ErrorKind::kGpuFault;
  if (options_.run_diagnosis && batch_may_be_at_fault) RunDiagnosis();
}

void FaultGuard::RunDiagnosis() const {
  // The child is stopped at the timeout: it is told, so that it skips the re-runs that would not fit.
  std::vector<std::string> args{options_.executable, "diagnose", bundle_, "--time-budget",
                                std::to_string(options_.diagnosis_timeout_s)};
  args.insert(args.end(), options_.diagnosis_args.begin(), options_.diagnosis_args.end());
  std::vector<std::string> env = ChildEnvironment();
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  for (auto& e : env) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  std::fflush(nullptr);
  // posix_spawn, not fork: a forked copy of a process with MPI, NCCL and CUDA threads may
  // deadlock on a lock one of them held before it reaches exec.
  pid_t child = 0;
  const int failed = ::posix_spawn(&child, argv[0], nullptr, nullptr, argv.data(), envp.data());
  if (failed != 0) {
    LogLine("error: could not start the diagnosis (" + ErrnoMessage(argv[0], failed) + "); run `trainguard diagnose " +
            bundle_ + "` by hand");
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options_.diagnosis_timeout_s);
  int status = 0;
  while (::waitpid(child, &status, WNOHANG) == 0) {
    if (StopHurried()) {  // the launcher is ending the job: its SIGKILL would take the child too
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      LogLine("the diagnosis was stopped: the launcher is ending the job; run `trainguard diagnose " + bundle_ +
              "` by hand");
      return;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      char budget[32];
      std::snprintf(budget, sizeof budget, "%.0f", options_.diagnosis_timeout_s);
      LogLine("error: the diagnosis overran its " + std::string(budget) + " s (--fault-grace minus 5 s) and was " +
              "stopped; the bundle stays: run `trainguard diagnose " + bundle_ + "` by hand, or raise --fault-grace");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace trainguard
