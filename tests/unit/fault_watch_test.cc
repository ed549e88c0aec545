// FaultWatch's verdicts, ranks simulated in one process: an in-process fault link (every rank's
// notices in a switchboard) and a fake clock that only the test moves, so deadlines are exact
// and no test waits for them. The real threads are the watch's watchdog and, where a verdict
// waits for the other ranks' announcements, one thread per waiting rank.
#include "diagnostics/faults/fault_watch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tests/unit/fault_link_fakes.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

using testing::FakeClock;
using testing::FakeLink;
using testing::Switchboard;
using testing::WaitUntil;

constexpr double kTimeout = 5;  // --step-timeout
constexpr double kGrace = 2;    // how long a stalled rank collects announcements

struct Stuck {
  std::atomic<int> calls{0};
  std::mutex mutex;
  std::string message;
};

FaultWatchOptions Options(FakeClock& clock, Stuck& stuck) {
  FaultWatchOptions o;
  o.step_timeout_s = kTimeout;
  o.grace_s = kGrace;
  o.on_stuck = [&stuck](const std::string& message) {
    std::lock_guard<std::mutex> lock(stuck.mutex);
    stuck.message = message;
    ++stuck.calls;
  };
  o.now = clock.Function();
  return o;
}

// The same, with a view of the others' liveness and a --step-timeout of the test's.
FaultWatchOptions Options(FakeClock& clock, Stuck& stuck, PeerView& peers, double step_timeout_s = kTimeout) {
  FaultWatchOptions o = Options(clock, stuck);
  o.peers = &peers;
  o.step_timeout_s = step_timeout_s;
  return o;
}

// Check() in a thread of its own: "" when it returned, else the stall verdict's text.
std::future<std::string> CheckAsync(FaultWatch& watch) {
  return std::async(std::launch::async, [&watch]() -> std::string {
    try {
      watch.Check();
      return "";
    } catch (const FaultError& e) {
      return std::string(e.kind() == ErrorKind::kStall ? "" : "(not a stall) ") + e.what();
    }
  });
}

// After a verdict: a Check() must return at once. A second verdict would wait for announcements
// while the fake clock stands still; it is ended by moving the clock, and reported.
std::string CheckAgain(FaultWatch& watch, FakeClock& clock) {
  auto again = CheckAsync(watch);
  if (again.wait_for(std::chrono::seconds(5)) == std::future_status::ready) return again.get();
  clock.Advance(1000);
  return "a second verdict began: " + again.get();
}

// Lets the watchdog thread (which looks every 100 ms) look a few times.
void LetTheWatchdogLook() { std::this_thread::sleep_for(std::chrono::milliseconds(350)); }

TEST(FaultWatch, WaitThatEndsBeforeItsDeadlineGetsNoVerdict) {
  Switchboard board(2);
  FakeLink link(board, 0);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch(link, Options(clock, stuck));
  watch.SetPhase("the evaluation after epoch 1");
  watch.BeginWait();
  clock.Advance(kTimeout - 0.1);
  EXPECT_NO_THROW(watch.Check());
  // The next wait has a deadline of its own: 9.8 s after the first began is not a stall.
  watch.BeginWait();
  clock.Advance(kTimeout - 0.1);
  EXPECT_NO_THROW(watch.Check());
  // A step that ends in time, then a wait between steps.
  watch.Arm(1);
  clock.Advance(kTimeout - 0.1);
  EXPECT_NO_THROW(watch.Check());
  watch.Disarm();
  LetTheWatchdogLook();
  EXPECT_TRUE(board.SentBy(0).empty()) << "a rank that is in time tells nobody";
  EXPECT_EQ(stuck.calls, 0);
}

TEST(FaultWatch, WaitBetweenStepsThatOverrunsItsDeadlineNamesThePhaseAndTheLateRank) {
  Switchboard board(3);  // rank 2 never comes
  FakeLink link0(board, 0), link1(board, 1);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch0(link0, Options(clock, stuck)), watch1(link1, Options(clock, stuck));
  for (FaultWatch* w : {&watch0, &watch1}) {
    w->SetPhase("the evaluation after epoch 1");
    w->BeginWait();
    w->Check();
  }
  clock.Advance(kTimeout + 0.5);
  auto verdict0 = CheckAsync(watch0), verdict1 = CheckAsync(watch1);
  // Both announce that they wait and read each other's announcement; rank 2 gets both.
  ASSERT_TRUE(WaitUntil([&] { return board.Pending(2) == 2 && board.Pending(0) == 0 && board.Pending(1) == 0; }));
  EXPECT_EQ(verdict0.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the verdict waits --fault-grace for the ranks that are late";
  clock.Advance(kGrace + 0.1);
  const std::string expected =
      "stall in the evaluation after epoch 1: rank(s) 2 did not arrive within --step-timeout 5 s "
      "(waiting: rank(s) 0, 1)";
  for (auto* verdict : {&verdict0, &verdict1}) {
    const std::string text = verdict->get();
    EXPECT_EQ(text.rfind(expected, 0), 0u) << text;
  }
  // One verdict: the wait is over; the clock may run on, nothing more is said or thrown.
  clock.Advance(1000);
  EXPECT_EQ(CheckAgain(watch0, clock), "");
  LetTheWatchdogLook();
  EXPECT_EQ(board.SentBy(0).size(), 1u);
  EXPECT_EQ(board.SentBy(0)[0].kind, FaultChannel::kWaiting);
  EXPECT_EQ(board.SentBy(0)[0].step, -1) << "the first wait between steps has the key -1 on every rank";
  EXPECT_EQ(stuck.calls, 0);
}

TEST(FaultWatch, StepThatOverrunsItsDeadlineNamesTheStepAndIsTheOnlyCause) {
  Switchboard board(2);  // rank 1 never comes
  FakeLink link(board, 0);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch(link, Options(clock, stuck));
  watch.Arm(4);
  clock.Advance(kTimeout - 0.1);
  EXPECT_NO_THROW(watch.Check());
  clock.Advance(0.6);
  auto verdict = CheckAsync(watch);
  ASSERT_TRUE(WaitUntil([&] { return board.Pending(1) == 1; }));
  clock.Advance(kGrace + 0.1);
  const std::string text = verdict.get();
  EXPECT_EQ(text.rfind("stall in step 4: rank(s) 1 did not arrive within --step-timeout 5 s (waiting: rank(s) 0)", 0),
            0u)
      << text;
  // Far past the watchdog's slack (2 x grace + 1 s after the deadline): the verdict disarmed the
  // watch, so this rank is not also reported as stuck in its computation.
  clock.Advance(1000);
  EXPECT_EQ(CheckAgain(watch, clock), "");
  LetTheWatchdogLook();
  EXPECT_EQ(stuck.calls, 0);
  EXPECT_EQ(board.SentBy(0).size(), 1u);
}

// A PeerView over a liveness board whose clock is the test's: what rank 0 (the hub) knows.
class BoardView final : public PeerView {
 public:
  BoardView(FakeClock& clock, int world) : clock_(clock), board_(0, Hosts(world), 1, {}, clock.Function()()) {}
  // Rank r beacons `progress` now.
  void Beacon(int r, const Progress& progress) {
    LivenessBoard sender(r, Hosts(board_.world()), 1, {}, clock_.Function()());
    sender.SetOwn(progress);
    board_.Take(sender.Beacon(clock_.Function()()), clock_.Function()());
  }
  void Report(const Progress& progress) override { board_.SetOwn(progress); }
  std::set<int> Silent() override { return board_.Silent(clock_.Function()()); }
  double LongestSilence() override { return board_.LongestSilence(clock_.Function()()); }
  bool HubLost() override { return false; }
  bool NoOneToWaitFor() override { return board_.NoOneToWaitFor(clock_.Function()()); }
  bool AnyStopping() override { return board_.AnyStopping(clock_.Function()()); }
  std::string Describe(int rank) override { return board_.Describe(rank, clock_.Function()()); }
  std::string Name(int rank) override { return board_.Name(rank); }
  std::string Host(int rank) override { return board_.host(rank); }
  const Progress& own() const { return board_.own(); }

 private:
  static std::vector<std::string> Hosts(int world) {
    std::vector<std::string> hosts;
    for (int r = 0; r < world; ++r) hosts.push_back("h" + std::to_string(r + 1));
    return hosts;
  }
  FakeClock& clock_;
  LivenessBoard board_;
};

TEST(FaultWatch, ASilentRankIsNotWaitedForAndIsNamedWithItsHostAndLastProgress) {
  Switchboard board(3);  // rank 2 is silent; rank 1 announces itself
  FakeLink link0(board, 0), link1(board, 1);
  FakeClock clock;
  Stuck stuck;
  BoardView peers(clock, 3);
  FaultWatch watch0(link0, Options(clock, stuck, peers)), watch1(link1, Options(clock, stuck));
  Progress last;
  last.step = 4;
  last.collective = 2;
  last.waiting = true;
  peers.Beacon(1, last);
  peers.Beacon(2, last);
  watch0.Arm(4);
  watch1.Arm(4);
  EXPECT_EQ(peers.own().step, 4);
  watch0.BeginWait();
  EXPECT_TRUE(peers.own().waiting);
  EXPECT_EQ(peers.own().collective, 1);
  clock.Advance(kTimeout + 0.5);
  peers.Beacon(1, last);  // rank 1 still beacons; rank 2 has been silent for 5.5 s
  auto verdict0 = CheckAsync(watch0), verdict1 = CheckAsync(watch1);
  // No clock advance: rank 0 does not wait the grace for a silent rank.
  ASSERT_EQ(verdict0.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  const std::string text = verdict0.get();
  EXPECT_EQ(
      text.rfind("stall in step 4: rank(s) 2 did not arrive within --step-timeout 5 s (waiting: rank(s) 0, 1); "
                 "rank 2 (host h3) silent for 5.5 s; last seen in step 4, waiting in its collective 2 of the step",
                 0),
      0u)
      << text;
  EXPECT_EQ(text.find("debugger"), std::string::npos);
  clock.Advance(kGrace + 0.1);  // rank 1 has no view: it waits the grace
  EXPECT_EQ(verdict1.get().rfind("stall in step 4: rank(s) 2 did not arrive", 0), 0u);
  watch0.Stopping("diagnosing step 4");
  EXPECT_EQ(peers.own().state, 'S');
  watch0.AtEnd();
  EXPECT_EQ(peers.own().state, 'E');
}

TEST(FaultWatch, AWaitForAPeerSilentForAWholeStepTimeoutEndsAtOnce) {
  Switchboard board(2);
  FakeLink link0(board, 0);
  FakeClock clock;
  Stuck stuck;
  BoardView peers(clock, 2);
  FaultWatch watch(link0, Options(clock, stuck, peers));
  peers.Beacon(1, Progress{});
  clock.Advance(kTimeout - 1);  // rank 1 silent since; this rank computed meanwhile
  watch.SetPhase("the evaluation after epoch 1");
  watch.BeginWait();
  EXPECT_NO_THROW(watch.Check()) << "silent for less than --step-timeout";
  clock.Advance(1.1);  // the wait began 1.1 s ago: far from its deadline, but rank 1 is gone
  const std::string text = CheckAsync(watch).get();
  EXPECT_EQ(text.rfind("stall in the evaluation after epoch 1: rank(s) 1 did not arrive", 0), 0u) << text;
  EXPECT_NE(text.find("rank 1 (host h2) silent for 5.1 s"), std::string::npos) << text;
}

// With the default --step-timeout (300 s) a rank gone silent is not waited for 300 s, nor for 60:
// kSilenceVerdictS of silence end the wait.
TEST(FaultWatch, WithALongStepTimeoutASilentPeerEndsTheWaitAfterTheSilenceVerdictSeconds) {
  Switchboard board(2);
  FakeLink link0(board, 0);
  FakeClock clock;
  Stuck stuck;
  BoardView peers(clock, 2);
  FaultWatch watch(link0, Options(clock, stuck, peers, 300));
  peers.Beacon(1, Progress{});
  watch.Arm(7);
  watch.BeginWait();
  clock.Advance(FaultWatch::kSilenceVerdictS - 0.2);
  EXPECT_NO_THROW(watch.Check()) << "silent, but not for long enough";
  clock.Advance(0.3);
  const std::string text = CheckAsync(watch).get();
  EXPECT_EQ(text.rfind("stall in step 7: rank(s) 1 did not arrive", 0), 0u) << text;
  EXPECT_NE(text.find("rank 1 (host h2) silent for 6.1 s"), std::string::npos) << text;
}

// Steps learned on one rank (10 s deadline) and not on the other (300 s): the rank whose
// deadline passes first asks, the other, waiting in the same step, answers at once, and the
// verdict names only the rank that did not arrive, with the learned deadline.
TEST(FaultWatch, ALearnedDeadlineEndsAStepAndARankWaitingInTheSameStepAnswersAtOnce) {
  Switchboard board(3);  // rank 2 is stuck in step 11
  FakeLink link0(board, 0), link1(board, 1);
  FakeClock clock;
  Stuck stuck;
  std::vector<std::string> changes;
  FaultWatchOptions o = Options(clock, stuck);
  o.step_timeout_s = 300;
  o.on_deadline = [&changes](WaitPhase phase, const Deadlines& d) {
    changes.push_back(std::string(WaitPhaseLabel(phase)) + " " + std::to_string(d.Of(phase)));
  };
  FaultWatch watch0(link0, o);
  FaultWatchOptions o1 = Options(clock, stuck);
  o1.step_timeout_s = 300;
  FaultWatch watch1(link1, o1);
  for (int step = 1; step <= 10; ++step) {
    watch0.Arm(step);
    clock.Advance(0.2);
    watch0.EndStep();
  }
  ASSERT_EQ(changes, std::vector<std::string>{"step 10.000000"}) << "learned once, at the tenth step";
  EXPECT_EQ(watch0.deadlines().Of(WaitPhase::kStep), 10);
  for (FaultWatch* w : {&watch0, &watch1}) {
    w->Arm(11);
    w->BeginWait();
    w->Check();
  }
  clock.Advance(10.5);
  auto verdict0 = CheckAsync(watch0);
  ASSERT_TRUE(WaitUntil([&] { return board.Pending(1) == 1; }));
  EXPECT_NO_THROW(watch1.Check()) << "rank 1's own deadline is far: it only answers";
  EXPECT_EQ(board.SentBy(1).size(), 1u);
  EXPECT_EQ(board.SentBy(1)[0].kind, FaultChannel::kWaiting);
  EXPECT_EQ(board.SentBy(1)[0].step, 11);
  clock.Advance(kGrace + 0.1);
  const std::string text = verdict0.get();
  EXPECT_EQ(text.rfind("stall in step 11: rank(s) 2 did not arrive within the deadline of 10 s (learned: 3x the "
                       "longest of the last 10 training steps, 0.2 s, at least 10 s; --step-timeout 300 s caps it) "
                       "(waiting: rank(s) 0, 1)",
                       0),
            0u)
      << text;
  // A step that ends well teaches; one that overran (a verdict) does not.
  EXPECT_EQ(changes.size(), 1u);
}

// A rank computing outside any collective (an evaluation) polls between batches: a peer silent
// for kSilenceVerdictS ends the computation with the silent rank named, not the collective at its
// end, however long the computation is.
TEST(FaultWatch, PollDuringAComputationEndsItOnceAPeerIsSilent) {
  Switchboard board(3);
  FakeLink link0(board, 0);
  FakeClock clock;
  Stuck stuck;
  BoardView peers(clock, 3);
  FaultWatch watch(link0, Options(clock, stuck, peers, 300));
  watch.SetPhase("the evaluation after epoch 1", WaitPhase::kEvaluating);
  Progress evaluating;
  evaluating.phase = "the evaluation after epoch 1";
  peers.Beacon(1, evaluating);
  peers.Beacon(2, evaluating);
  for (int batch = 0; batch < 59; ++batch) {  // 5.9 s of batches; rank 1 beacons on, rank 2 is silent
    clock.Advance(0.1);
    peers.Beacon(1, evaluating);
    EXPECT_NO_THROW(watch.Poll()) << "batch " << batch;
  }
  clock.Advance(0.3);
  peers.Beacon(1, evaluating);
  try {
    watch.Poll();
    FAIL() << "no verdict with rank 2 silent for 6.2 s";
  } catch (const FaultError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kStall);
    const std::string text = e.what();
    EXPECT_EQ(text.rfind("stall in the evaluation after epoch 1: rank(s) 2 went silent while this rank computed", 0),
              0u)
        << text;
    EXPECT_NE(text.find("rank 2 (host h3) silent for 6.2 s"), std::string::npos) << text;
  }
  EXPECT_TRUE(board.SentBy(0).empty()) << "no announcement: no collective was waited in";
}

TEST(FaultWatch, RankStuckInComputationIsReportedOnceByTheWatchdog) {
  Switchboard board(2);
  FakeLink link(board, 0);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch(link, Options(clock, stuck));
  watch.Arm(3);  // and no Check(): the rank computes, in no collective
  clock.Advance(kTimeout + 2 * kGrace + 1 - 0.5);
  LetTheWatchdogLook();
  EXPECT_EQ(stuck.calls, 0) << "within the slack a waiting peer's stall verdict comes first";
  clock.Advance(1);
  ASSERT_TRUE(WaitUntil([&] { return stuck.calls > 0; }));
  const std::string expected = "rank 0 is stuck in the computation of step 3, past --step-timeout 5 s";
  {
    std::lock_guard<std::mutex> lock(stuck.mutex);
    EXPECT_EQ(stuck.message, expected);
  }
  const auto sent = board.SentBy(0);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].kind, static_cast<int>(ErrorKind::kStall));
  EXPECT_EQ(sent[0].step, 3);
  EXPECT_EQ(sent[0].message, expected);
  clock.Advance(1000);
  LetTheWatchdogLook();
  EXPECT_EQ(stuck.calls, 1) << "one verdict";
  EXPECT_EQ(board.SentBy(0).size(), 1u);
}

TEST(FaultWatch, PeerFailureEndsTheWaitWithThePeersKindASecondAfterItArrives) {
  Switchboard board(2);
  FakeLink link0(board, 0), link1(board, 1);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch(link0, Options(clock, stuck));
  watch.SetPhase("the label validation");
  watch.BeginWait();
  link1.Tell(static_cast<int>(ErrorKind::kNonFinite), 3, "non-finite loss at step 3");
  // Within the second, this rank may reach the same agreed verdict itself.
  EXPECT_NO_THROW(watch.Check());
  clock.Advance(0.9);
  EXPECT_NO_THROW(watch.Check());
  clock.Advance(0.2);
  try {
    watch.Check();
    FAIL() << "no verdict";
  } catch (const PeerError& e) {
    EXPECT_EQ(e.origin(), ErrorKind::kNonFinite);
    EXPECT_STREQ(e.what(), "rank 1 failed: non-finite loss at step 3");
  }
  EXPECT_TRUE(board.SentBy(0).empty()) << "the peer already knows";
}

TEST(FaultWatch, PeerFailureDuringAStallVerdictIsTheCause) {
  Switchboard board(2);
  FakeLink link0(board, 0), link1(board, 1);
  FakeClock clock;
  Stuck stuck;
  FaultWatch watch(link0, Options(clock, stuck));
  watch.Arm(2);
  clock.Advance(kTimeout + 0.1);
  auto verdict = std::async(std::launch::async, [&watch]() -> std::optional<PeerError> {
    try {
      watch.Check();
    } catch (const PeerError& e) {
      return e;
    } catch (...) {
    }
    return std::nullopt;
  });
  ASSERT_TRUE(WaitUntil([&] { return board.Pending(1) == 1; }));  // rank 0 announced its wait
  link1.Tell(static_cast<int>(ErrorKind::kDeviceAssert), 2, "CUDA error: device-side assert triggered");
  const auto peer = verdict.get();  // no clock move: the notice alone ends the verdict
  ASSERT_TRUE(peer.has_value()) << "the stall was reported instead of the peer's failure";
  EXPECT_EQ(peer->origin(), ErrorKind::kDeviceAssert);
  EXPECT_STREQ(peer->what(), "rank 1 failed: CUDA error: device-side assert triggered");
  clock.Advance(1000);
  LetTheWatchdogLook();
  EXPECT_EQ(stuck.calls, 0);
}

}  // namespace
}  // namespace trainguard
