// Learned deadlines (see deadlines.h).
#include "diagnostics/faults/deadlines.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace trainguard {
namespace {

std::string Secs(double s) {
  char text[32];
  std::snprintf(text, sizeof text, s >= 10 ? "%.0f" : s >= 0.1 ? "%.2g" : "%.3f", s);
  return text;
}

// Each phase's metric label, its words in logs and how its deadline is learned, in the order of
// WaitPhase. Steps and the checks between them come by the hundred: 10 show their spread, and
// with a 10 s floor a rank hung in one ends the job in about 22 s (the deadline, the 5 s the
// others take to name it, the hung rank's own watchdog 6 s later). Validation, evaluation and
// checkpoints come once an epoch (or every --checkpoint-every steps) and their time depends on
// disks and datasets more than on the model: two are learned from, with a minute's floor and
// more headroom for the disk. The start and the agreement on bad samples are never learned.
struct PhaseInfo {
  const char* label;
  const char* words;
  Deadlines::Policy policy;
};
constexpr PhaseInfo kPhases[kWaitPhases] = {
    {"step", "training steps", {10, 3, 10}},
    {"straggler_check", "straggler checks", {10, 3, 10}},
    {"validating", "label validations", {60, 3, 2}},
    {"evaluating", "evaluations", {60, 3, 2}},
    {"checkpointing", "checkpoints", {60, 4, 2}},
    {"starting", "starts", {0, 0, 0}},
    {"agreeing", "agreements on bad samples", {0, 0, 0}},
};

const PhaseInfo& Info(WaitPhase phase) { return kPhases[static_cast<int>(phase)]; }

}  // namespace

const char* WaitPhaseLabel(WaitPhase phase) { return Info(phase).label; }

const char* WaitPhaseWords(WaitPhase phase) { return Info(phase).words; }

Deadlines::Policy Deadlines::PolicyOf(WaitPhase phase) { return Info(phase).policy; }

Deadlines::Deadlines(double ceiling_s) : ceiling_s_(ceiling_s) {
  for (State& s : state_) s.deadline_s = ceiling_s;
}

double Deadlines::Learn(WaitPhase phase) const {
  const Policy p = PolicyOf(phase);
  const State& s = state_[Index(phase)];
  if (p.learn_after == 0 || s.seen < p.learn_after) return ceiling_s_;
  const double longest = *std::max_element(s.window.begin(), s.window.end());
  return std::min(ceiling_s_, std::max(p.floor_s, p.factor * longest));
}

bool Deadlines::Record(WaitPhase phase, double seconds) {
  State& s = state_[Index(phase)];
  s.window.push_back(std::max(0.0, seconds));
  if (s.window.size() > kWindow) s.window.pop_front();
  ++s.seen;
  const double learned = Learn(phase);
  if (std::fabs(learned - s.deadline_s) < kChangeShare * s.deadline_s) return false;
  s.deadline_s = learned;
  return true;
}

std::string Deadlines::Explain(WaitPhase phase) const {
  const Policy p = PolicyOf(phase);
  const State& s = state_[Index(phase)];
  const std::string words = WaitPhaseWords(phase);
  if (!Learned(phase)) {
    std::string why = "--step-timeout";
    if (p.learn_after == 0) {
      why += "; never learned: " + words + " are too few in a run";
    } else if (s.seen < p.learn_after) {
      why += "; not learned yet: " + std::to_string(s.seen) + " of " + std::to_string(p.learn_after) + " " + words +
             " seen";
    } else {
      why += ", shorter than the learned deadline";
    }
    return Secs(s.deadline_s) + " s (" + why + ")";
  }
  const double longest = *std::max_element(s.window.begin(), s.window.end());
  char factor[16];
  std::snprintf(factor, sizeof factor, "%g", p.factor);
  return Secs(s.deadline_s) + " s (learned: " + factor + "x the longest of the last " +
         std::to_string(s.window.size()) + " " + words + ", " + Secs(longest) + " s, at least " + Secs(p.floor_s) +
         " s; --step-timeout " + Secs(ceiling_s_) + " s caps it)";
}

}  // namespace trainguard
