// The frame of the MPI subcommands (see run_job.h).
#include "launcher/run_job.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "diagnostics/faults/fault_watch.h"
#include "launcher/exit_codes.h"
#include "launcher/metrics_report.h"
#include "launcher/stack_dump.h"
#include "launcher/stop.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

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

}  // namespace

int RunJob(Command& command, MpiSession& mpi, const std::function<int(Job&)>& body,
           const std::function<void(Command&, Job&)>& configure) {
  PrintResolved(command, mpi);
  Job job(mpi);
  // Every rank's liveness and progress on a side channel, so that a rank that goes silent (a
  // lost node, a cut link, a frozen process) is named, with its host, and not waited for.
  try {
    if (mpi.world() > 1)
      job.liveness = std::make_unique<Liveness>(job.control, LivenessOptions{}, "",
                                                static_cast<uint16_t>(command.train.liveness_port));
  } catch (const std::exception& e) {
    StopRank(e, job, command.train.fault_grace);
  }
  // Every wait for other ranks, in every subcommand, gives up on a peer's fault notice or at
  // its deadline (learned, at most --step-timeout); a rank stuck in a step's computation is
  // ended by the watchdog.
  FaultWatchOptions watch;
  watch.peers = job.liveness.get();
  watch.step_timeout_s = command.train.step_timeout;
  watch.grace_s = std::min(command.train.fault_grace, 5.0);
  watch.claims_exit = true;
  watch.on_stuck = [&job](const std::string&) {
    if (!ClaimExit(kExitStall)) StandAside("the watchdog's stall verdict");
    LogLine("the training thread's call stack:\n" + TrainingThreadStack(2.0));
    ReportFailure(job.metrics.get(), "stall", kExitStall);
    std::fflush(nullptr);
    std::_Exit(kExitStall);
  };
  watch.on_deadline = [&job](WaitPhase phase, const Deadlines& deadlines) {
    if (job.control.rank() == 0)
      LogLine(std::string("deadline of ") + WaitPhaseWords(phase) + ": " + deadlines.Explain(phase));
    if (job.metrics) job.metrics->SetWaitDeadline(WaitPhaseLabel(phase), deadlines.Of(phase));
  };
  job.watch = std::make_unique<FaultWatch>(job.faults, std::move(watch));
  job.control.set_wait_guard(job.watch.get());
  RememberTrainingThread();  // this thread trains: the watchdog logs its stack if it gets stuck
  try {
    job.watch->SetPhase("the set-up of the job");
    if (configure) RunAgreed(job.control, [&] { configure(command, job); });
    PrepareJob(command.train, job);
    const int code = body(job);
    if (!ClaimExit(code)) StandAside("the job finished");  // a signal or the watchdog got there first
    return code;
  } catch (const std::exception& e) {
    StopRank(e, job, command.train.fault_grace);
  }
}

}  // namespace trainguard
