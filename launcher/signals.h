// The signals a running job (train, validate, predict) answers: a scheduler's stop request, and
// a launcher's teardown. The handlers only write the signal's number to a pipe; one thread reads
// it and acts, so that acting may log, count and push metrics.
//
//   SIGUSR1  a stop request (Slurm's --signal, the Kubernetes launcher's wrapper, by hand). In
//            `train` with --checkpoint it sets StopRequested(): the ranks agree on a step, rank 0
//            writes the checkpoint and every rank exits 12 (kExitPreempted). Elsewhere it is
//            logged and ignored: there is nothing to save.
//   SIGTERM  where it is a scheduler's (srun, a direct start: Slurm's time limit, preemption,
//            scancel) and a checkpoint can be written, the same stop request, bounded: a rank
//            that is still running --preempt-grace seconds later (a peer died, say) exits 6.
//            Under mpirun, SIGTERM means the job is being torn down (a rank died, or mpirun
//            itself was stopped) and SIGKILL follows within about a second
//            (odls_base_sigkill_timeout): the rank counts the failure as "peer", writes its
//            metrics and exits 6 at once. So it does in validate and predict.
#pragma once

#include <atomic>

#include "diagnostics/metrics/metrics.h"

namespace trainguard {

struct SignalPolicy {
  int rank = 0;
  bool can_checkpoint = false;  // train with --checkpoint
  double preempt_grace_s = 20;  // --preempt-grace
};

// Installs the handlers and starts the thread that acts on them. Call once, before training.
void HandleJobSignals(const SignalPolicy& policy);

// Set once a stop request was accepted (read by the trainer at every step).
const std::atomic<bool>& StopRequested();

// While alive, a signal that ends the rank counts the failure in `metrics` and flushes them.
class SignalMetricsScope {
 public:
  explicit SignalMetricsScope(Metrics* metrics);
  ~SignalMetricsScope();
  SignalMetricsScope(const SignalMetricsScope&) = delete;
  SignalMetricsScope& operator=(const SignalMetricsScope&) = delete;
};

}  // namespace trainguard
