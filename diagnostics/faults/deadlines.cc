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

}  // namespace

const char* WaitPhaseLabel(WaitPhase phase) {
  switch (phase) {
    case WaitPhase::kStep:
      return "step";
    case WaitPhase::kStragglerCheck:
      return "straggler_check";
    case WaitPhase::kValidating:
      return "validating";
    case WaitPhase::kEvaluating:
      return "evaluating";
    case WaitPhase::kCheckpointing:
      return "checkpointing";
    case WaitPhase::kStarting:
      return "starting";
    case WaitPhase::kAgreeing:
      return "agreeing";
  }
  return "?";
}

const char* WaitPhaseWords(WaitPhase phase) {
  switch (phase) {
    case WaitPhase::kStep:
      return "training steps";
    case WaitPhase::kStragglerCheck:
      return "straggler checks";
    case WaitPhase::kValidating:
      return "label validations";
    case WaitPhase::kEvaluating:
      return "evaluations";
    case WaitPhase::kCheckpointing:
      return "checkpoints";
    case WaitPhase::kStarting:
      return "starts";
    case WaitPhase::kAgreeing:
      return "agreements on bad samples";
  }
  return "?";
}

// Steps and the checks between them come by the hundred: 10 show their spread, and with a 10 s
// floor a rank hung in one ends the job in about 22 s (the deadline, the 5 s the others take to
// name it, the hung rank's own watchdog 6 s later). Validation, evaluation and checkpoints come once an epoch (or
// every --checkpoint-every steps) and their time depends on disks and datasets more than on
// the model: two are learned from, with a minute's floor and more headroom for the disk.
Deadlines::Policy Deadlines::PolicyOf(WaitPhase phase) {
  switch (phase) {
    case WaitPhase::kStep:
    case WaitPhase::kStragglerCheck:
      return {10, 3, 10};
    case WaitPhase::kValidating:
    case WaitPhase::kEvaluating:
      return {60, 3, 2};
    case WaitPhase::kCheckpointing:
      return {60, 4, 2};
    case WaitPhase::kStarting:
    case WaitPhase::kAgreeing:
      return {0, 0, 0};
  }
  return {0, 0, 0};
}

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
