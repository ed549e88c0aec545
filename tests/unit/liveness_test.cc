// The liveness board (pure, ranks simulated with made-up clocks) and its UDP transport (ranks as
// threads on loopback).
#include "diagnostics/faults/liveness.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "diagnostics/faults/liveness_board.h"
#include "diagnostics/faults/stragglers.h"
#include "tests/support/thread_control_plane.h"

namespace trainguard {
namespace {

using Clock = LivenessClock;
using std::chrono::milliseconds;

const std::vector<std::string> kHosts{"h1", "h2", "h3"};
constexpr uint64_t kNonce = 42;

struct Cluster {
  Clock::time_point t0 = Clock::now();
  std::vector<LivenessBoard> boards;
  Cluster() {
    for (int r = 0; r < 3; ++r) boards.emplace_back(r, kHosts, kNonce, LivenessOptions{}, t0);
  }
  // Rank r beacons to the hub at `at`, and the hub's digest comes back.
  void RoundTrip(int r, Clock::time_point at) {
    ASSERT_EQ(boards[0].Take(boards[r].Beacon(at), at), r);
    ASSERT_EQ(boards[r].Take(boards[0].Digest(at), at), 0);
  }
  Clock::time_point At(int ms) const { return t0 + milliseconds(ms); }
};

Progress InStep(int64_t step, int32_t collective, bool waiting, Clock::time_point since) {
  Progress p;
  p.step = step;
  p.collective = collective;
  p.waiting = waiting;
  p.since = since;
  return p;
}

TEST(LivenessBoard, HubNamesARankThatStoppedBeaconingWithItsLastProgress) {
  Cluster c;
  c.boards[1].SetOwn(InStep(52, 3, true, c.At(900)));
  c.RoundTrip(1, c.At(1000));
  c.RoundTrip(2, c.At(1000));
  EXPECT_TRUE(c.boards[0].Silent(c.At(3900)).empty());  // 2.9 s: not yet
  c.RoundTrip(2, c.At(3900));
  EXPECT_EQ(c.boards[0].Silent(c.At(4100)), std::set<int>{1});
  EXPECT_NEAR(c.boards[0].LongestSilence(c.At(4100)), 3.1, 1e-9);
  EXPECT_NEAR(c.boards[2].LongestSilence(c.At(3900)), 0, 1e-9) << "rank 2 heard the hub call no one silent";
  EXPECT_EQ(c.boards[0].Describe(1, c.At(7100)),
            "rank 1 (host h2) silent for 6.1 s; last seen in step 52, waiting in its collective 3 of the step for "
            "6.2 s");
}

TEST(LivenessBoard, ConnectedRanksAgreeThroughTheDigestAndTheCutRankSaysItLostTheHub) {
  Cluster c;
  c.boards[1].SetOwn(InStep(7, 1, false, c.At(100)));
  c.RoundTrip(1, c.At(500));
  c.RoundTrip(2, c.At(500));
  // Rank 1's host is cut: only rank 2 goes on talking to the hub.
  for (int ms = 1000; ms <= 5000; ms += 500) c.RoundTrip(2, c.At(ms));
  EXPECT_EQ(c.boards[0].Silent(c.At(5000)), std::set<int>{1});
  EXPECT_EQ(c.boards[2].Silent(c.At(5000)), std::set<int>{1});
  EXPECT_NE(c.boards[2]
                .Describe(1, c.At(5000))
                .find("rank 1 (host h2) silent for 4.5 s; last seen in step 7, computing "
                      "after its collective 1"),
            std::string::npos)
      << c.boards[2].Describe(1, c.At(5000));
  EXPECT_FALSE(c.boards[2].HubLost(c.At(5000)));
  // Rank 1 heard nothing for 4.5 s: the hub is lost, and with it everyone.
  EXPECT_TRUE(c.boards[1].HubLost(c.At(5000)));
  EXPECT_EQ(c.boards[1].Silent(c.At(5000)), (std::set<int>{0, 2}));
  EXPECT_NEAR(c.boards[1].LongestSilence(c.At(5000)), 4.5, 1e-9);
  EXPECT_NEAR(c.boards[2].LongestSilence(c.At(5000)), 4.5, 1e-9);
  EXPECT_NE(c.boards[1]
                .Describe(0, c.At(5000))
                .find("rank 0 (host h1) silent for 4.5 s (this rank hears the others "
                      "only through it)"),
            std::string::npos);
  EXPECT_NE(c.boards[1].Describe(2, c.At(5000)).find("unknown: heard only through rank 0, which is silent"),
            std::string::npos);
}

TEST(LivenessBoard, AHealedRankIsAliveAgain) {
  Cluster c;
  c.RoundTrip(1, c.At(0));
  c.RoundTrip(2, c.At(4000));
  EXPECT_EQ(c.boards[2].Silent(c.At(4000)), std::set<int>{1});
  c.RoundTrip(1, c.At(4500));
  c.RoundTrip(2, c.At(4600));
  EXPECT_TRUE(c.boards[2].Silent(c.At(4600)).empty());
  EXPECT_NE(c.boards[2].Describe(1, c.At(4600)).find("rank 1 (host h2) alive"), std::string::npos);
}

TEST(LivenessBoard, NoOneIsSilentWhereTheChannelNeverWorked) {
  Cluster c;  // UDP dropped between the nodes: no beacon ever reaches the hub
  EXPECT_FALSE(c.boards[0].Connected());
  EXPECT_FALSE(c.boards[1].Connected());
  EXPECT_TRUE(c.boards[0].Silent(c.At(60000)).empty());
  EXPECT_TRUE(c.boards[1].Silent(c.At(60000)).empty());
  EXPECT_FALSE(c.boards[1].HubLost(c.At(60000)));
  EXPECT_EQ(c.boards[1].LongestSilence(c.At(60000)), 0);
  c.RoundTrip(1, c.At(60000));
  EXPECT_TRUE(c.boards[0].Connected());
  EXPECT_TRUE(c.boards[1].Connected());
  EXPECT_EQ(c.boards[0].Silent(c.At(64000)), std::set<int>{1}) << "rank 2 was never heard: not judged";
}

TEST(LivenessBoard, DatagramsOfAnotherJobOrGarbageAreRefused) {
  Cluster c;
  LivenessBoard other(1, kHosts, kNonce + 1, LivenessOptions{}, c.t0);
  EXPECT_EQ(c.boards[0].Take(other.Beacon(c.At(10)), c.At(10)), -1);
  EXPECT_EQ(c.boards[0].Take("TG1 B 42 9 R 1 1 1 1 x", c.At(10)), -1);  // no rank 9
  EXPECT_EQ(c.boards[0].Take("TG1 B 42 1 Z 1 1 1 1 x", c.At(10)), -1);  // no state Z
  EXPECT_EQ(c.boards[0].Take("hello", c.At(10)), -1);
  EXPECT_EQ(c.boards[1].Take("TG1 D 42 2 RR\n", c.At(10)), -1);             // a world of 2 is not this job
  EXPECT_EQ(c.boards[1].Take(c.boards[1].Beacon(c.At(10)), c.At(10)), -1);  // only the hub takes beacons
}

TEST(LivenessBoard, NoOneToWaitForOnceTheOthersAreAtTheEndSilentOrGone) {
  Cluster c;
  Progress end;
  end.state = 'E';
  c.boards[2].SetOwn(end);
  c.RoundTrip(1, c.At(0));
  c.RoundTrip(2, c.At(0));
  EXPECT_FALSE(c.boards[0].NoOneToWaitFor(c.At(100)));  // rank 1 runs on
  c.RoundTrip(2, c.At(3500));
  EXPECT_TRUE(c.boards[0].NoOneToWaitFor(c.At(3500)));  // rank 1 silent, rank 2 at the end
  Progress left;
  left.state = 'L';
  c.boards[1].SetOwn(left);
  c.RoundTrip(1, c.At(3600));
  EXPECT_TRUE(c.boards[0].Silent(c.At(9000)).count(1) == 0) << "a rank that left is not silent";
  EXPECT_EQ(c.boards[0].Describe(1, c.At(9000)), "rank 1 (host h2) has exited");
}

TEST(LivenessBoard, AStoppingRankIsWaitedForAndSaysWhy) {
  Cluster c;
  Progress stopping;
  stopping.state = 'S';
  stopping.phase = "diagnosing step 4";
  stopping.since = c.At(0);
  c.boards[1].SetOwn(stopping);
  c.RoundTrip(1, c.At(1000));
  c.RoundTrip(2, c.At(1000));
  EXPECT_FALSE(c.boards[2].NoOneToWaitFor(c.At(1000)));
  EXPECT_TRUE(c.boards[2].AnyStopping(c.At(1000)));
  EXPECT_TRUE(c.boards[0].AnyStopping(c.At(1000)));
  EXPECT_FALSE(c.boards[1].AnyStopping(c.At(1000))) << "its own state does not count";
  EXPECT_FALSE(c.boards[0].AnyStopping(c.At(5000))) << "a silent rank is not waited for, stopping or not";
  EXPECT_EQ(c.boards[2].Describe(1, c.At(1000)), "rank 1 (host h2) alive, stopping (diagnosing step 4) for 1.0 s");
}

TEST(Stragglers, ARankWellAboveTheMedianIsNamedWithItsRatio) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 2, 3}), 2.5);
  EXPECT_TRUE(FindStragglers({0.1, 0.11, 0.1}, 1.5).empty());
  const auto found = FindStragglers({0.1, 0.32, 0.1, 0.36}, 1.5);  // median 0.21
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].rank, 3);
  EXPECT_DOUBLE_EQ(found[0].ratio, 0.36 / 0.21);
  EXPECT_EQ(found[1].rank, 1);
  EXPECT_DOUBLE_EQ(found[1].seconds, 0.32);
  EXPECT_TRUE(FindStragglers({0, 0}, 1.5).empty()) << "no step timed: no verdict";
}

// The transport: three ranks as threads on loopback see each other, their progress, and a rank
// that leaves.
TEST(Liveness, RanksOnLoopbackSeeEachOtherAndOneThatLeaves) {
  LivenessOptions fast;
  fast.beacon_interval_s = 0.05;
  fast.silent_after_s = 1;
  std::atomic<int> left{0};
  std::vector<std::string> seen_by_0;
  testing::RunRanks(3, [&](ControlPlane& control) {
    Liveness live(control, fast, "127.0.0.1");
    Progress p;
    p.step = 10 + control.rank();
    p.waiting = true;
    p.collective = 2;
    live.Report(p);
    std::this_thread::sleep_for(milliseconds(400));
    EXPECT_TRUE(live.Silent().empty());
    if (control.rank() == 0) {
      for (int r = 0; r < 3; ++r) seen_by_0.push_back(live.Describe(r));
    }
    std::vector<int64_t> sync{0};
    control.AllReduceSum(sync);
    if (control.rank() == 2) {
      live.Leave();
      ++left;
    }
    control.AllReduceSum(sync);
    std::this_thread::sleep_for(milliseconds(300));
    if (control.rank() != 2) {
      EXPECT_EQ(live.Describe(2), live.Name(2) + " has exited");
      EXPECT_TRUE(live.Silent().empty());
    }
    control.AllReduceSum(sync);
  });
  EXPECT_EQ(left, 1);
  ASSERT_EQ(seen_by_0.size(), 3u);
  EXPECT_NE(seen_by_0[1].find("alive, in step 11, waiting in its collective 2 of the step"), std::string::npos)
      << seen_by_0[1];
  EXPECT_NE(seen_by_0[2].find("alive, in step 12, waiting in its collective 2 of the step"), std::string::npos)
      << seen_by_0[2];
}

}  // namespace
}  // namespace trainguard
