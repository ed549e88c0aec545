// FaultWatch: the WaitGuard of the MPI planes plus a watchdog thread. While a rank waits in a
// collective, Check() (called between polls) ends the wait when
//  - a peer's fault notice has arrived and the collective has not completed within a second of
//    it: PeerError with the peer's failure kind and message. (A peer that reached an agreed
//    verdict first, e.g. a non-finite loss, may tell before this rank's own part of the same
//    collective completes; the second lets this rank reach the verdict itself and do its share,
//    such as writing the bundle. If the collective completes, the notice stays for the next wait.)
//  - the step overruns its deadline, or, between steps (label validation, evaluation, a
//    checkpoint, the initial broadcast, validate, predict), the wait itself overruns the deadline
//    of its phase: the rank announces that it waits, collects the same announcement from the
//    others for `grace` seconds, and throws FaultError(kStall) naming the ranks that did not
//    arrive. A rank waiting in the same collective answers an announcement at once, so ranks
//    whose deadlines differ a little still agree on who is missing. With a PeerView, a rank that
//    is silent on the liveness channel (gone, frozen, cut off) is not waited for, and the verdict
//    says of each missing rank its host and what it was last doing.
//  - a peer has been silent on the liveness channel for kSilenceVerdictS, whenever the wait
//    began and whatever the deadlines: the same verdict at once. A rank computing outside any
//    collective (an evaluation) learns it through Poll().
// Deadlines are learned from this run's durations of each phase (deadlines.h); --step-timeout
// is their ceiling and the default until a phase is learned. Each change of a deadline in force
// goes to FaultWatchOptions::on_deadline.
// A rank stuck outside any collective (in computation) is caught by the watchdog thread, which
// tells the others and calls `on_stuck` (the launcher exits the process). Every verdict
// disarms the watch, so that a failure is reported with one cause.
// The watch reaches the other ranks through a FaultLink (the FaultChannel in production) and
// reads the time from FaultWatchOptions::now: tests give it an in-process link and a fake clock.
// It also publishes this rank's progress (step, phase, collectives begun, waiting or not) to
// the PeerView, which the other ranks read when this rank goes silent.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "diagnostics/faults/deadlines.h"
#include "diagnostics/faults/liveness.h"
#include "trainer/comm/fault_channel.h"
#include "trainer/core/errors.h"
#include "trainer/core/wait_guard.h"

namespace trainguard {

// What the watch uses of the fault channel (see FaultChannel for the contract of each call).
class FaultLink {
 public:
  virtual ~FaultLink() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual void Tell(int kind, int64_t step, const std::string& message) = 0;  // thread-safe
  virtual std::optional<FaultNotice> Poll() = 0;
};

struct FaultWatchOptions {
  double step_timeout_s = 300;                       // --step-timeout: the ceiling of every deadline
  double grace_s = 5;                                // how long a stalled rank collects the others' announcements
  std::function<void(const std::string&)> on_stuck;  // the watchdog's verdict on this rank
  std::function<std::chrono::steady_clock::time_point()> now;  // the clock; empty: steady_clock
  PeerView* peers = nullptr;  // the liveness of the others (must outlive the watch); null: none known
  // A rank's watch: a peer's notice or a stall verdict claims the process's exit for the waiting
  // thread (exit_owner.h). Off where several watches share a process (tests' simulated ranks).
  bool claims_exit = false;
  // A deadline in force changed (`phase`'s, in `deadlines`): for the log and the metrics.
  std::function<void(WaitPhase phase, const Deadlines& deadlines)> on_deadline;
};

class FaultWatch final : public WaitGuard {
 public:
  // A peer silent this long (12 missed beacons, twice the liveness channel's "silent") is gone,
  // whatever the deadlines allow: a frozen or lost rank ends the job in seconds, while a merely
  // slow one keeps beaconing (its liveness thread does not wait for its training thread).
  static constexpr double kSilenceVerdictS = 6;

  FaultWatch(FaultLink& link, FaultWatchOptions options);  // the link must outlive the watch
  FaultWatch(FaultChannel& channel, FaultWatchOptions options);
  ~FaultWatch() override;  // stops the watchdog
  FaultWatch(const FaultWatch&) = delete;
  FaultWatch& operator=(const FaultWatch&) = delete;

  // A step begins (1-based global step): its deadline is now + the step's deadline.
  void Arm(int64_t step);
  // The step ended well: its duration is learned from; then Disarm().
  void EndStep();
  // No step is running (between steps, evaluation, checkpoints).
  void Disarm();
  // Names what the rank does between steps, for the verdicts (e.g. "evaluation after epoch 2"),
  // and its kind, whose deadline holds for each wait until the next phase or step.
  void SetPhase(const std::string& what, WaitPhase kind = WaitPhase::kStarting);
  // The deadlines as learned so far (training thread only).
  const Deadlines& deadlines() const { return deadlines_; }
  void BeginWait() override;
  void EndWait() override;
  void Check() override;
  // Between units of a long computation outside any collective (an evaluation batch): a peer
  // silent for kSilenceVerdictS, or a peer's failure notice a second old, ends the computation
  // at once (the collective at its end could never complete). At most one look per 100 ms.
  void Poll();
  // The rank stops on a failure (`why`, e.g. "diagnosing step 4"): the others give it the fault
  // grace. Then AtEnd(): it waits for the others at the final rendezvous.
  void Stopping(const std::string& why);
  void AtEnd();

 private:
  using Clock = std::chrono::steady_clock;
  FaultWatch(std::unique_ptr<FaultLink> owned, FaultLink* link, FaultWatchOptions options);  // link or *owned
  Clock::time_point Now() const { return now_ ? now_() : Clock::now(); }
  void Drain();                // reads notices: waiting announcements are recorded (and answered), faults throw
  void Announce(int64_t key);  // tells the others this rank waits in `key` (once per key)
  void EndOccurrence();        // the phase between steps ends: its longest wait is learned from
  void Learn(WaitPhase phase, double seconds);
  std::string DeadlineWords(int64_t key);  // how the deadline of `key` was chosen, for the verdict
  void ClaimStop(const std::string& why);  // this rank stops: claims the exit (options.claims_exit)
  [[noreturn]] void StallVerdict(int64_t key);
  [[noreturn]] void SilenceVerdict();  // Poll()'s: peers went silent while this rank computed
  void ThrowDuePeerFailure();          // the peer's failure notice, once it is a second old
  bool PeerSilentTooLong();            // a peer silent for kSilenceVerdictS (asks the view at most every 100 ms)
  std::string Describe(int64_t key);   // "step 4", or the phase of a wait between steps
  void Watchdog();
  void Publish();                                          // progress_ to the PeerView
  std::string MissingRanks(const std::set<int>& missing);  // the verdict's words on them

  std::unique_ptr<FaultLink> owned_link_;  // the adapter of a FaultChannel, if the watch made one
  FaultLink& channel_;
  const double grace_s_;
  std::function<void(WaitPhase, const Deadlines&)> on_deadline_;
  Deadlines deadlines_;  // training thread only
  WaitPhase phase_kind_ = WaitPhase::kStarting;
  Clock::time_point armed_at_;       // the start of the running step
  Clock::time_point wait_began_;     // the start of the running wait between steps
  double longest_wait_ = -1;         // of the phase's waits so far; -1: none yet
  int64_t announced_ = 0;            // the last key this rank announced waiting in
  std::string step_deadline_words_;  // for the watchdog's message (under phase_mutex_)
  std::function<void(const std::string&)> on_stuck_;
  std::function<Clock::time_point()> now_;
  std::map<int64_t, std::set<int>> waiting_;  // step -> ranks that announced waiting
  std::optional<PeerError> peer_failure_;     // the first fault notice, kept until thrown
  Clock::time_point peer_failure_at_;
  std::atomic<int64_t> step_{0};  // 0: disarmed
  std::atomic<Clock::rep> deadline_{0};
  // Waits between steps: each has its own deadline and a key (-1, -2, ...) that every rank
  // counts alike, since every rank calls the same collectives in the same order.
  int64_t waits_ = 0;
  int64_t wait_key_ = 0;  // 0: no wait between steps has begun since the last Arm
  Clock::time_point wait_deadline_;
  std::mutex phase_mutex_;  // the watchdog reads the phase and step_deadline_words_ too
  std::string phase_ = "a collective between steps";
  PeerView* peers_;
  const bool claims_exit_;
  Clock::time_point next_silence_check_{};  // Check() asks the PeerView at most every 100 ms
  Progress progress_;                       // this rank's, as published (training thread only)
  std::atomic<Clock::rep> last_check_{0};   // when the training thread last polled
  std::atomic<bool> stop_{false};
  std::thread watchdog_;
};

}  // namespace trainguard
