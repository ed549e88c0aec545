// Signals of a running job (see signals.h).
#include "launcher/signals.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "launcher/exit_codes.h"
#include "launcher/metrics_report.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

int g_pipe[2] = {-1, -1};  // the handlers write to [1], the acting thread reads [0]
std::atomic<bool> g_stop{false};
std::mutex g_metrics_mutex;  // guards g_metrics
Metrics* g_metrics = nullptr;

// Whether SIGTERM reaches this rank from mpirun: OpenMPI's launcher sets OMPI_COMM_WORLD_SIZE,
// srun's PMIx start does not. Read before main(): MPI_Init of a process started without mpirun
// (a singleton) may set OpenMPI's variables in its own environment.
const bool g_started_by_mpirun = std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr;

extern "C" void OnSignal(int signal) {
  const int saved = errno;
  const char byte = static_cast<char>(signal);
  const ssize_t ignored = ::write(g_pipe[1], &byte, 1);  // async-signal-safe; a full pipe drops a repeat
  (void)ignored;
  errno = saved;
}

// Counts the failure as "peer", flushes the metrics and ends the process with `code`, unless
// the rank is already ending (a failure's stop protocol, the watchdog): that exit stands.
[[noreturn]] void EndRank(const std::string& line, int code) {
  if (!ClaimExit(code)) {
    HurryTheStop();
    StandAside("SIGTERM during the stop (it cuts the stop short)");
  }
  std::fprintf(stderr, "%s\n", line.c_str());
  {
    std::lock_guard<std::mutex> lock(g_metrics_mutex);
    ReportFailure(g_metrics, "peer", code);
  }
  std::fflush(nullptr);
  std::_Exit(code);
}

std::string RankTag(int rank) { return "[rank " + std::to_string(rank) + "] "; }

[[noreturn]] void EndOnTeardown(const SignalPolicy& policy) {
  EndRank(RankTag(policy.rank) +
              "stopped by SIGTERM: the launcher ends the job, usually because another rank died (or the scheduler "
              "ends it); exiting with code " +
              std::to_string(kExitPeer),
          kExitPeer);
}

// Reads one signal number from the pipe, waiting at most `timeout_ms` (-1: no limit); 0 when
// the time ran out.
int NextSignal(int timeout_ms) {
  for (;;) {
    pollfd fd{g_pipe[0], POLLIN, 0};
    const int ready = ::poll(&fd, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return 0;
    char byte = 0;
    if (::read(g_pipe[0], &byte, 1) == 1) return byte;
  }
}

// The acting thread: runs for the life of the process.
void ActOnSignals(SignalPolicy policy) {
  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;  // set by a SIGTERM that asked for a checkpoint
  for (;;) {
    int timeout_ms = -1;
    if (deadline) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count()));
    }
    const int signal = NextSignal(timeout_ms);
    if (signal == 0) {  // the deadline passed: the ranks did not reach the agreed checkpoint
      char grace[32];
      std::snprintf(grace, sizeof grace, "%g", policy.preempt_grace_s);
      EndRank(RankTag(policy.rank) + "stopped by SIGTERM: no checkpoint was agreed within --preempt-grace " + grace +
                  " s (another rank may have died); exiting with code " + std::to_string(kExitPeer),
              kExitPeer);
    }
    if (signal == SIGUSR1) {
      if (!policy.can_checkpoint) {
        LogLine("SIGUSR1 ignored: there is nothing to checkpoint (train with --checkpoint stops on it)");
      } else if (!g_stop.exchange(true)) {
        LogLine("SIGUSR1: stopping after the next step with a checkpoint; then exit " + std::to_string(kExitPreempted) +
                " (rerun with --resume auto)");
      }
    } else if (signal == SIGTERM) {
      // A second SIGTERM, or one that cannot lead to a checkpoint, ends the rank now.
      if (deadline || !policy.can_checkpoint || g_started_by_mpirun) EndOnTeardown(policy);
      g_stop = true;
      deadline = Clock::now() +
                 std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(policy.preempt_grace_s));
      LogLine("SIGTERM: stopping after the next step with a checkpoint; then exit " + std::to_string(kExitPreempted) +
              " (exit " + std::to_string(kExitPeer) + " if that takes longer than --preempt-grace)");
    }
  }
}

}  // namespace

const std::atomic<bool>& StopRequested() { return g_stop; }

void HandleJobSignals(const SignalPolicy& policy) {
  if (::pipe2(g_pipe, O_CLOEXEC) != 0) {
    LogLine("warning: no signal handling (pipe failed); SIGTERM and SIGUSR1 end the rank");
    return;
  }
  ::fcntl(g_pipe[1], F_SETFL, O_NONBLOCK);
  std::thread(ActOnSignals, policy).detach();
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGUSR1, &action, nullptr);
}

SignalMetricsScope::SignalMetricsScope(Metrics* metrics) {
  std::lock_guard<std::mutex> lock(g_metrics_mutex);
  g_metrics = metrics;
}

SignalMetricsScope::~SignalMetricsScope() {
  std::lock_guard<std::mutex> lock(g_metrics_mutex);
  g_metrics = nullptr;
}

}  // namespace trainguard
