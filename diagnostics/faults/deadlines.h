// Deadlines: how long a rank waits in each phase before it calls the wait a stall, learned from
// this run's own durations of that phase. Pure: no clock, no MPI; the fault watch feeds it.
//
// A phase's deadline is `factor` times the longest of its last kWindow durations, at least
// `floor_s`, and never more than the ceiling (--step-timeout). Until a phase has been seen
// `learn_after` times, the ceiling holds: the first steps (while kernels are chosen and caches
// fill), the first evaluation and the first checkpoint get the generous default. Phases a run
// meets about once (the start, the agreement on a failed batch's samples, which waits for a
// diagnosis) are never learned. The deadline in force moves only when the learned value differs
// from it by at least kChangeShare, so that each change can be logged and a step's jitter does
// not move it.
//
// The ranks agree without talking: a step's duration ends in the collectives every rank shares,
// so every rank measures about the same durations and learns about the same deadlines; where
// they differ a little, the first rank to give up asks the others, and a rank waiting in the
// same collective answers at once (FaultWatch), so the verdict names only the ranks that did not
// arrive.
#pragma once

#include <array>
#include <deque>
#include <string>

namespace trainguard {

enum class WaitPhase {
  kStep,            // a training step, its collectives included (from its start to its end)
  kStragglerCheck,  // the exchange of step timings every few steps
  kValidating,      // label validation before an epoch
  kEvaluating,      // evaluation and the accuracy counts after an epoch
  kCheckpointing,   // a checkpoint (rank 0 writes, the others wait in the agreement)
  kStarting,        // set-up, the initial broadcast, loading a checkpoint: about once a run
  kAgreeing,        // the agreement on a failed batch's samples (waits for its diagnosis)
};
constexpr int kWaitPhases = 7;

// "step", "straggler_check", ...: the metric's label.
const char* WaitPhaseLabel(WaitPhase phase);
// "a training step", "the straggler check", ...: the log's words.
const char* WaitPhaseWords(WaitPhase phase);

class Deadlines {
 public:
  static constexpr size_t kWindow = 256;
  static constexpr double kChangeShare = 0.2;

  struct Policy {
    double floor_s = 0;   // the learned deadline is at least this
    double factor = 0;    // times the longest duration of the window
    int learn_after = 0;  // durations seen before the deadline is learned; 0: never learned
  };
  static Policy PolicyOf(WaitPhase phase);

  explicit Deadlines(double ceiling_s);

  double ceiling() const { return ceiling_s_; }
  // The deadline in force for `phase`, in seconds.
  double Of(WaitPhase phase) const { return state_[Index(phase)].deadline_s; }
  // Whether the deadline in force was learned (and is below the ceiling).
  bool Learned(WaitPhase phase) const { return state_[Index(phase)].deadline_s < ceiling_s_; }
  // Takes one duration of `phase`; true when the deadline in force changed.
  bool Record(WaitPhase phase, double seconds);
  // How the deadline in force was chosen, for logs and verdicts, e.g. "10 s (learned: 3x the
  // longest of the last 40 training steps, 0.12 s, at least 10 s; --step-timeout 300 s caps
  // it)" or "300 s (--step-timeout; not learned yet: 3 of 10 training steps seen)".
  std::string Explain(WaitPhase phase) const;

 private:
  struct State {
    std::deque<double> window;
    long seen = 0;
    double deadline_s = 0;
  };
  static size_t Index(WaitPhase phase) { return static_cast<size_t>(phase); }
  double Learn(WaitPhase phase) const;  // the learned value now (the ceiling until learned)

  double ceiling_s_;
  std::array<State, kWaitPhases> state_;
};

}  // namespace trainguard
