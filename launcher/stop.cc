// The stop protocol and the exit codes (see stop.h).
#include "launcher/stop.h"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

#include "launcher/exit_codes.h"
#include "launcher/metrics_report.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/host_addresses.h"
#include "trainer/core/log.h"
#include "trainer/step_errors.h"

namespace trainguard {

ErrorKind KindOfAny(const std::exception& e) {
  if (dynamic_cast<const c10::DistError*>(&e)) return ErrorKind::kComm;
  // An allocation that failed outside a step (building the model, an evaluation): a step's own is
  // already a FaultError.
  if (dynamic_cast<const Error*>(&e) == nullptr && IsOutOfMemory(e)) return ErrorKind::kOutOfMemory;
  return KindOf(e);
}

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
    case ErrorKind::kOutOfMemory:
      return kExitOutOfMemory;
    case ErrorKind::kGpuFault:
      return kExitGpuFault;
    case ErrorKind::kQuarantined:
      return kExitQuarantined;
    case ErrorKind::kInternal:
      return kExitInternal;
  }
  return kExitInternal;
}

std::string FailureKindOf(const std::exception& e) {
  if (dynamic_cast<const PeerError*>(&e)) return "peer";
  const ErrorKind kind = KindOfAny(e);
  return ErrorKindName(kind == ErrorKind::kBatchData ? ErrorKind::kLabels : kind);  // a target out of range
}

namespace {

// The stop's rendezvous: waits for the other ranks so that none is ended by the launcher while it
// still writes its bundle, diagnoses or pushes. Bounded by --fault-grace, and shorter where the
// liveness channel shows that waiting is pointless: it ends once every other rank is silent, has
// exited or waits here too; and after kUnannouncedWaitS once no other rank says it is stopping
// (a rank alive but stuck in its computation is ended by its own watchdog or the launcher).
void WaitForTheOthers(Job& job, double grace_s) {
  constexpr double kUnannouncedWaitS = 5;  // for a peer that was told to reach its own stop
  Liveness* liveness = job.liveness.get();
  const auto start = std::chrono::steady_clock::now();
  const auto give_up = [&] {
    if (StopHurried()) return true;  // the launcher is ending the job
    if (liveness == nullptr) return false;
    if (liveness->NoOneToWaitFor()) return true;
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return waited >= kUnannouncedWaitS && !liveness->AnyStopping();
  };
  if (job.faults.Rendezvous(grace_s, give_up)) return;
  if (liveness == nullptr) {
    LogLine("some ranks did not reach the end within --fault-grace");
    return;
  }
  std::string missing;
  for (int r = 0; r < job.mpi.world(); ++r) {
    if (r != job.mpi.rank()) missing += (missing.empty() ? "" : "; ") + liveness->Describe(r);
  }
  LogLine("not waiting longer for the other ranks: " + missing);
}

// The failure's fingerprint, one line in --checkpoint's folder (Job::failure_file), written by
// a rank where the failure arose (not one stopping for a peer): what the launcher scripts compare
// to decide that a requeued job met the same failure again (docs/preemption.md). The host belongs
// to a GPU fault's fingerprint only: the other kinds repeat on any node.
void WriteFingerprint(const std::exception& e, int code, const Job& job) {
  if (job.failure_file.empty() || dynamic_cast<const PeerError*>(&e) != nullptr) return;
  const auto* fault = dynamic_cast<const FaultError*>(&e);
  const ErrorKind kind = KindOfAny(e);
  std::string line = "exit=" + std::to_string(code) + " kind=" + ErrorKindName(kind) +
                     " step=" + std::to_string(fault != nullptr ? fault->step() : 0);
  if (kind == ErrorKind::kGpuFault) line += " host=" + HostName();
  try {
    WriteFileAtomically(job.failure_file, line + "\n");
  } catch (const std::exception& write_error) {
    LogLine(std::string("warning: the failure's fingerprint was not written: ") + write_error.what());
  }
}

// Rank 0 (which writes the checkpoints): the training since the last one, which a resumed run
// redoes; logged and exported.
void ReportLostTraining(const Job& job) {
  if (job.failure_file.empty() || job.mpi.rank() != 0) return;
  const double lost = std::chrono::duration<double>(std::chrono::steady_clock::now() - job.progress_saved_at).count();
  char line[160];
  std::snprintf(line, sizeof line, "%.0f s of training since the last checkpoint (or this run's start) are lost", lost);
  LogLine(line);
  if (job.metrics) job.metrics->SetLostTrainingSeconds(lost);
}

}  // namespace

void CountFailure(const std::exception& e, Job& job) {
  if (job.failure_counted) return;
  job.failure_counted = true;
  if (job.metrics) job.scrapes_at_failure = job.metrics->scrapes();
  if (KindOfAny(e) == ErrorKind::kQuarantined) {  // a planned rerun, counted as quarantined samples
    if (job.metrics) job.metrics->SetExitCode(kExitQuarantined);
    FlushMetrics(job.metrics.get());
    return;
  }
  ReportFailure(job.metrics.get(), FailureKindOf(e), ExitCodeOf(e));
}

namespace {

// The stop protocol after the exit is claimed (see StopRank).
void StopProtocol(const std::exception& e, Job& job, double grace_s, int code) {
  const bool verdict_everywhere = dynamic_cast<const LabelError*>(&e) != nullptr;
  const bool unclassified_memory = IsOutOfMemory(e) && dynamic_cast<const Error*>(&e) == nullptr;
  if (unclassified_memory) {
    LogLine("error: " + OutOfMemoryElsewhere(job.device, e.what()));
  } else if (!verdict_everywhere || job.mpi.rank() == 0) {
    LogLine(std::string("error: ") + e.what());
  }
  const bool tell = job.mpi.world() > 1 && !dynamic_cast<const PeerError*>(&e);
  if (tell) job.faults.Tell(static_cast<int>(KindOfAny(e)), 0, e.what());
  Liveness* liveness = job.liveness.get();
  if (liveness != nullptr && job.metrics) {
    std::map<int, std::string> silent;
    for (int r : liveness->Silent()) silent[r] = liveness->Host(r);
    job.metrics->SetSilentPeers(silent);
  }
  WriteFingerprint(e, code, job);
  ReportLostTraining(job);
  // Before the rendezvous: once one rank exits, the launcher may end the others.
  if (job.failure_counted) {
    FlushMetrics(job.metrics.get());  // the silent peers, the lost training
  } else {
    CountFailure(e, job);
  }
  // Before the rendezvous, so that no rank leaves (and has the launcher end the others) before
  // every rank was scraped; and said on the liveness channel, so that a peer already at the
  // rendezvous waits for this rank (within the grace) instead of taking it for one stuck.
  if (job.watch) job.watch->Stopping("waiting for one more scrape of its metrics");
  LingerForScrape(job.metrics.get(), job.scrapes_at_failure, std::min(job.metrics_linger_s, grace_s), "the failure");
  if (job.watch) job.watch->AtEnd();
  if (job.mpi.world() > 1) WaitForTheOthers(job, grace_s);
  if (liveness != nullptr) liveness->Leave();
  if (job.data) job.data->Abort(StopHurried() ? 1.0 : 5.0);
}

}  // namespace

// Ends this rank after a failure. Unless the failure came from a peer, the others are told over
// the fault channel (a notice to a rank that already knows, because the failure was agreed, is
// drained unread); the failure is counted in the metrics and pushed; then the ranks wait for each
// other (bounded by --fault-grace) so that no rank is killed by the launcher while it still
// writes its bundle or pushes; then the data plane is aborted (bounded) and the process ends
// without MPI_Finalize, since collectives may be left pending. Its MPI calls report failures
// rather than throw; anything else that throws on the way (a broken device read for a memory
// figure, say) is logged, and the rank still exits with the cause's code.
[[noreturn]] void StopRank(const std::exception& e, Job& job, double grace_s) {
  const int code = ExitCodeOf(e);
  if (!ClaimExit(code)) StandAside(std::string("error: ") + FirstLine(e.what()));
  try {
    StopProtocol(e, job, grace_s, code);
  } catch (const std::exception& during) {
    LogLine(std::string("error during the stop (the rank still exits with its cause's code): ") + during.what());
  } catch (...) {
    LogLine("error during the stop (the rank still exits with its cause's code)");
  }
  LogLine("exiting with code " + std::to_string(code));
  std::fflush(nullptr);
  std::_Exit(code);
}

}  // namespace trainguard
