// Fault notices, stall verdicts and the watchdog (see fault_watch.h).
#include "diagnostics/faults/fault_watch.h"

#include <algorithm>

#include "trainer/core/errors.h"
#include "trainer/core/exit_owner.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

std::string RankList(const std::set<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

class ChannelLink final : public FaultLink {
 public:
  explicit ChannelLink(FaultChannel& channel) : channel_(channel) {}
  int rank() const override { return channel_.rank(); }
  int world() const override { return channel_.world(); }
  void Tell(int kind, int64_t step, const std::string& message) override { channel_.Tell(kind, step, message); }
  std::optional<FaultNotice> Poll() override { return channel_.Poll(); }

 private:
  FaultChannel& channel_;
};

}  // namespace

FaultWatch::FaultWatch(FaultChannel& channel, FaultWatchOptions options)
    : FaultWatch(std::make_unique<ChannelLink>(channel), nullptr, std::move(options)) {}

FaultWatch::FaultWatch(FaultLink& link, FaultWatchOptions options) : FaultWatch(nullptr, &link, std::move(options)) {}

FaultWatch::FaultWatch(std::unique_ptr<FaultLink> owned, FaultLink* link, FaultWatchOptions options)
    : owned_link_(std::move(owned)),
      channel_(link != nullptr ? *link : *owned_link_),
      grace_s_(options.grace_s),
      on_deadline_(std::move(options.on_deadline)),
      deadlines_(options.step_timeout_s),
      on_stuck_(std::move(options.on_stuck)),
      now_(std::move(options.now)),
      peers_(options.peers),
      claims_exit_(options.claims_exit) {
  progress_.phase = phase_;
  Publish();
  watchdog_ = std::thread([this] { Watchdog(); });
}

FaultWatch::~FaultWatch() {
  stop_ = true;
  watchdog_.join();
}

void FaultWatch::Arm(int64_t step) {
  EndOccurrence();
  armed_at_ = Now();
  const auto deadline = armed_at_ + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(deadlines_.Of(WaitPhase::kStep)));
  {
    std::lock_guard<std::mutex> lock(phase_mutex_);
    step_deadline_words_ = DeadlineWords(step);
  }
  deadline_ = deadline.time_since_epoch().count();
  step_ = step;
  wait_key_ = 0;
  progress_.step = step;
  progress_.collective = 0;
  progress_.waiting = false;
  Publish();
}

void FaultWatch::EndStep() {
  if (step_ != 0) Learn(WaitPhase::kStep, std::chrono::duration<double>(Now() - armed_at_).count());
  Disarm();
}

void FaultWatch::Learn(WaitPhase phase, double seconds) {
  if (deadlines_.Record(phase, seconds) && on_deadline_) on_deadline_(phase, deadlines_);
}

void FaultWatch::EndOccurrence() {
  if (longest_wait_ >= 0) Learn(phase_kind_, longest_wait_);
  longest_wait_ = -1;
}

void FaultWatch::SetPhase(const std::string& what, WaitPhase kind) {
  EndOccurrence();
  phase_kind_ = kind;
  {
    std::lock_guard<std::mutex> lock(phase_mutex_);
    phase_ = what;
  }
  progress_.phase = what;
  progress_.collective = 0;
  Publish();
}

void FaultWatch::BeginWait() {
  ++progress_.collective;
  progress_.waiting = true;
  Publish();
  if (step_ != 0) return;  // inside a step: the step's deadline holds
  wait_key_ = -(++waits_);
  wait_began_ = Now();
  wait_deadline_ = wait_began_ + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(deadlines_.Of(phase_kind_)));
}

void FaultWatch::EndWait() {
  if (step_ == 0 && wait_key_ != 0) {
    longest_wait_ = std::max(longest_wait_, std::chrono::duration<double>(Now() - wait_began_).count());
  }
  progress_.waiting = false;
  Publish();
}

void FaultWatch::Stopping(const std::string& why) {
  progress_.state = 'S';
  progress_.phase = why;
  Publish();
}

void FaultWatch::AtEnd() {
  progress_.state = 'E';
  Publish();
}

void FaultWatch::Publish() {
  if (peers_ != nullptr) peers_->Report(progress_);
}

std::string FaultWatch::Describe(int64_t key) {
  if (key > 0) return "step " + std::to_string(key);
  std::lock_guard<std::mutex> lock(phase_mutex_);
  return phase_;
}

void FaultWatch::Disarm() {
  step_ = 0;
  wait_key_ = 0;
  progress_.step = 0;
  progress_.collective = 0;
  progress_.waiting = false;
  Publish();
}

void FaultWatch::Drain() {
  while (auto notice = channel_.Poll()) {
    if (notice->kind == FaultChannel::kWaiting) {
      waiting_[notice->step].insert(notice->from);
      // This rank waits in the same collective (Drain runs inside waits): it says so at once,
      // rather than when its own deadline passes, so that the verdict of the rank that gave up
      // first counts it as arrived.
      const int64_t key = step_ != 0 ? step_.load() : wait_key_;
      if (notice->step == key && progress_.waiting) Announce(key);
    } else if (!peer_failure_) {
      // This rank now stops with its peer: a later SIGTERM or watchdog verdict must not decide
      // its exit (Drain runs on the waiting thread, the one that goes on to the stop protocol).
      ClaimStop("rank " + std::to_string(notice->from) + "'s failure notice");
      peer_failure_.emplace("rank " + std::to_string(notice->from) + " failed: " + notice->message,
                            static_cast<ErrorKind>(notice->kind));
      peer_failure_at_ = Now();
    }
  }
}

void FaultWatch::ClaimStop(const std::string& why) {
  if (claims_exit_ && !ClaimExit()) StandAside(why);
}

void FaultWatch::ThrowDuePeerFailure() {
  if (peer_failure_ && Now() - peer_failure_at_ > std::chrono::seconds(1)) {
    Disarm();  // a verdict: the watchdog must not add a second cause while the rank stops
    throw *peer_failure_;
  }
}

bool FaultWatch::PeerSilentTooLong() {
  if (Now() < next_silence_check_) return false;
  next_silence_check_ = Now() + std::chrono::milliseconds(100);  // the view costs a lock and a pass over the ranks
  return peers_ != nullptr && peers_->LongestSilence() >= std::min(deadlines_.ceiling(), kSilenceVerdictS);
}

void FaultWatch::Check() {
  last_check_ = Now().time_since_epoch().count();
  Drain();
  ThrowDuePeerFailure();
  const int64_t step = step_;
  if (step > 0 && Now().time_since_epoch().count() > deadline_) StallVerdict(step);
  if (step == 0 && wait_key_ != 0 && Now() > wait_deadline_) StallVerdict(wait_key_);
  // A collective needs every rank: one silent for kSilenceVerdictS ends the wait, however
  // recently it began (a wait between steps may begin long after the peer went silent, and a
  // lost node should not hold the job for a long deadline).
  const int64_t key = step > 0 ? step : wait_key_;
  if (key != 0 && PeerSilentTooLong()) StallVerdict(key);
}

void FaultWatch::Poll() {
  last_check_ = Now().time_since_epoch().count();
  if (Now() < next_silence_check_) return;  // at most one look per 100 ms, as PeerSilentTooLong
  Drain();
  ThrowDuePeerFailure();
  if (PeerSilentTooLong()) SilenceVerdict();
}

void FaultWatch::SilenceVerdict() {
  const std::set<int> silent = peers_->Silent();
  Disarm();
  ClaimStop("the stall verdict");
  throw FaultError(ErrorKind::kStall,
                   "stall in " + Describe(0) + ": rank(s) " + RankList(silent) +
                       " went silent while this rank computed; the collective that ends it cannot complete" +
                       MissingRanks(silent));
}

void FaultWatch::Announce(int64_t key) {
  if (announced_ == key) return;
  announced_ = key;
  channel_.Tell(FaultChannel::kWaiting, key, "waiting");
  waiting_[key].insert(channel_.rank());
}

std::string FaultWatch::DeadlineWords(int64_t key) {
  const WaitPhase phase = key > 0 ? WaitPhase::kStep : phase_kind_;
  if (!deadlines_.Learned(phase))
    return "--step-timeout " + std::to_string(static_cast<int>(deadlines_.ceiling())) + " s";
  return "the deadline of " + deadlines_.Explain(phase);
}

void FaultWatch::StallVerdict(int64_t step) {  // a step, or the key (< 0) of a wait between steps
  Announce(step);
  const auto until = Now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(grace_s_));
  std::set<int> missing;
  for (;;) {
    last_check_ = Now().time_since_epoch().count();
    Drain();
    if (peer_failure_) {  // a peer's failure explains the wait
      Disarm();
      throw *peer_failure_;
    }
    missing.clear();
    for (int r = 0; r < channel_.world(); ++r) {
      if (waiting_[step].count(r) == 0) missing.insert(r);
    }
    // A silent rank will not announce itself: once every missing rank is silent, waiting longer
    // only delays the verdict.
    const std::set<int> silent = peers_ != nullptr ? peers_->Silent() : std::set<int>{};
    const bool all_silent = std::includes(silent.begin(), silent.end(), missing.begin(), missing.end());
    if (missing.empty() || all_silent || Now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Disarm();  // the verdict is the cause: the watchdog must not report this rank as stuck too
  ClaimStop("the stall verdict");
  throw FaultError(ErrorKind::kStall,
                   "stall in " + Describe(step) + ": rank(s) " + RankList(missing) + " did not arrive within " +
                       DeadlineWords(step) + " (waiting: rank(s) " + RankList(waiting_[step]) + ")" +
                       MissingRanks(missing),
                   step > 0 ? step : 0);
}

std::string FaultWatch::MissingRanks(const std::set<int>& missing) {
  if (peers_ == nullptr || missing.empty()) return "";
  std::string text;
  if (peers_->HubLost()) {
    text = "; this rank, on host " + peers_->Host(channel_.rank()) +
           ", lost contact with rank 0, through which it hears the others: this host is cut off from the network, "
           "or rank 0 is gone";
  }
  const std::set<int> silent = peers_->Silent();
  for (int r : missing) {
    text += "; " + peers_->Describe(r);
    if (silent.count(r) == 0) text += " (it answers but did not arrive: see its own log for where it is stuck)";
  }
  return text;
}

void FaultWatch::Watchdog() {
  using namespace std::chrono;
  while (!stop_) {
    std::this_thread::sleep_for(milliseconds(100));
    const int64_t step = step_;
    if (step == 0) continue;
    const auto now = Now().time_since_epoch().count();
    const auto slack = duration_cast<Clock::duration>(duration<double>(2 * grace_s_ + 1)).count();
    const bool polling = now - last_check_ < duration_cast<Clock::duration>(seconds(1)).count();
    if (polling || now <= deadline_ + slack) continue;
    // The training thread is not in a collective and the step is long overdue: stuck computing.
    std::string deadline;
    {
      std::lock_guard<std::mutex> lock(phase_mutex_);
      deadline = step_deadline_words_;
    }
    const std::string message = "rank " + std::to_string(channel_.rank()) + " is stuck in the computation of step " +
                                std::to_string(step) + ", past " + deadline;
    channel_.Tell(static_cast<int>(ErrorKind::kStall), step, message);
    LogLine("error: " + message);
    on_stuck_(message);
    return;
  }
}

}  // namespace trainguard
