// The liveness board (pure, ranks simulated with made-up clocks) and its UDP transport (ranks as
// threads on loopback).
#include "diagnostics/faults/liveness.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <thread>

#include "diagnostics/faults/liveness_board.h"
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
    for (const std::string& part : boards[0].Digest(at)) ASSERT_EQ(boards[r].Take(part, at), 0);
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
  EXPECT_EQ(c.boards[0].Take("TG2 B 42 9 R 1 1 1 1 x", c.At(10)), -1);  // no rank 9
  EXPECT_EQ(c.boards[0].Take("TG2 B 42 1 Z 1 1 1 1 x", c.At(10)), -1);  // no state Z
  EXPECT_EQ(c.boards[0].Take("TG1 B 42 1 R 1 1 1 1 x", c.At(10)), -1);  // the unsplit wire of before
  EXPECT_EQ(c.boards[0].Take("hello", c.At(10)), -1);
  EXPECT_EQ(c.boards[1].Take("TG2 D 42 2 0 RR\n", c.At(10)), -1);           // a world of 2 is not this job
  EXPECT_EQ(c.boards[1].Take("TG2 D 42 3 2 RR\n", c.At(10)), -1);           // ranks 2 and 3 of 3
  EXPECT_EQ(c.boards[1].Take("TG1 D 42 3 RRR\n", c.At(10)), -1);            // the unsplit digest of before
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

// A job of `world` ranks as the hub sees it, with the digest's receiver (rank 5) beside it.
struct BigJob {
  Clock::time_point t0 = Clock::now();
  std::vector<std::string> hosts;
  LivenessBoard hub;
  LivenessBoard receiver;
  explicit BigJob(int world)
      : hosts(Hosts(world)),
        hub(0, hosts, kNonce, LivenessOptions{}, t0),
        receiver(kReceiver, hosts, kNonce, LivenessOptions{}, t0) {}
  static constexpr int kReceiver = 5;
  static std::vector<std::string> Hosts(int world) {
    std::vector<std::string> hosts;
    for (int r = 0; r < world; ++r) hosts.push_back("node-" + std::to_string(r / 8) + ".cluster.example.org");
    return hosts;
  }
  Clock::time_point At(int ms) const { return t0 + milliseconds(ms); }
  // Rank r's beacon with `progress`, as its own board writes it.
  std::string BeaconOf(int r, const Progress& progress, Clock::time_point at) const {
    LivenessBoard sender(r, hosts, kNonce, LivenessOptions{}, t0);
    sender.SetOwn(progress);
    return sender.Beacon(at);
  }
  // Every rank but those in `quiet` beacons at `at` (a mix of states, every fourth stopping with a
  // long reason, so that the digest carries its full kMaxDetails lines).
  void AllBeacon(Clock::time_point at, const std::set<int>& quiet = {}) {
    for (int r = 1; r < receiver.world(); ++r) {
      if (quiet.count(r) != 0) continue;
      Progress p = InStep(100 + r, r % 3, r % 2 == 0, at - milliseconds(r % 700));
      if (r % 4 == 1) {
        p.state = 'S';
        p.phase = "diagnosing step " + std::to_string(100 + r) + ": " + std::string(400, 'x');
      }
      ASSERT_EQ(hub.Take(BeaconOf(r, p, at), at), r);
    }
  }
};

// Parses a part's header: its first rank and how many ranks it covers.
std::pair<int, int> Covers(const std::string& part) {
  std::istringstream in(part);
  std::string magic, type, states;
  uint64_t nonce = 0;
  int world = 0, first = -1;
  in >> magic >> type >> nonce >> world >> first >> states;
  return {first, static_cast<int>(states.size())};
}

TEST(LivenessBoard, EveryDatagramFitsOneEthernetMtuAt1024And4096RanksWithLongPhases) {
  for (int world : {1024, 4096}) {
    BigJob job(world);
    Progress own = InStep(0, 0, false, job.t0);
    own.phase = std::string(5000, 'p');
    job.hub.SetOwn(own);
    const std::string beacon = job.BeaconOf(world - 1, own, job.At(10));
    EXPECT_LE(beacon.size(), LivenessBoard::kMaxDatagramBytes);
    job.AllBeacon(job.At(100));
    job.AllBeacon(job.At(3000), {7, 300, world - 2});  // three go silent: Q, with detail lines
    const std::vector<std::string> parts = job.hub.Digest(job.At(3500));
    ASSERT_GE(parts.size(), 2u) << "world " << world << ": the digest must need splitting to test it";
    int next = 0;
    size_t details = 0;
    for (const std::string& part : parts) {
      EXPECT_LE(part.size(), LivenessBoard::kMaxDatagramBytes) << "world " << world;
      const auto [first, count] = Covers(part);
      EXPECT_EQ(first, next) << "parts cover the ranks in order, each once";
      next = first + count;
      details += static_cast<size_t>(std::count(part.begin(), part.end(), '\n') - 1);
    }
    EXPECT_EQ(next, world);
    EXPECT_EQ(details, LivenessBoard::kMaxDetails);
  }
}

TEST(LivenessBoard, ASplitDigestGivesTheHubsViewInAnyOrderOfItsParts) {
  BigJob job(1024);
  job.AllBeacon(job.At(100));
  job.AllBeacon(job.At(3000), {7, 300, 1001});
  const auto now = job.At(3500);
  std::vector<std::string> parts = job.hub.Digest(now);
  ASSERT_GE(parts.size(), 2u);
  std::reverse(parts.begin(), parts.end());
  for (const std::string& part : parts) ASSERT_EQ(job.receiver.Take(part, now), 0);
  const std::set<int> silent{7, 300, 1001};
  EXPECT_EQ(job.hub.Silent(now), silent);
  EXPECT_EQ(job.receiver.Silent(now), silent);
  EXPECT_NEAR(job.receiver.LongestSilence(now), job.hub.LongestSilence(now), 1e-9);
  EXPECT_NEAR(job.receiver.LongestSilence(now), 3.4, 1e-9);
  EXPECT_TRUE(job.receiver.AnyStopping(now));
  for (int r : {0, 7, 300, 1001}) EXPECT_EQ(job.receiver.Describe(r, now), job.hub.Describe(r, now));
  EXPECT_NE(job.receiver.Describe(1001, now).find("last seen stopping (diagnosing step 1101: xxx"), std::string::npos)
      << "the detail line of a rank in the last part: " << job.receiver.Describe(1001, now);
  EXPECT_EQ(job.receiver.Describe(2, now), job.receiver.Name(2) + " alive");
}

TEST(LivenessBoard, ALostPartLeavesTheOthersIntactAndItsRanksSilentOnlyAfterTheThreshold) {
  BigJob job(1024);
  std::set<int> never_covered;  // by a part that arrived since the last part was first lost
  for (int r = 1; r < 1024; ++r) never_covered.insert(r);
  auto deliver = [&](Clock::time_point at, bool lose_last) {
    std::vector<std::string> parts = job.hub.Digest(at);
    if (lose_last) {
      parts.pop_back();
      for (const std::string& part : parts) {
        const auto [first, count] = Covers(part);
        for (int r = first; r < first + count; ++r) never_covered.erase(r);
      }
    }
    for (const std::string& part : parts) ASSERT_EQ(job.receiver.Take(part, at), 0);
  };
  job.AllBeacon(job.At(0));
  ASSERT_GE(job.hub.Digest(job.At(0)).size(), 2u);
  // Rank 7 (in the first part, which arrives) stops after 0; the last part arrives last at 1.0 s
  // (its first rank moves as the detail lines change).
  for (int ms = 0; ms <= 3500; ms += 500) {
    if (ms > 0) job.AllBeacon(job.At(ms), {7});
    deliver(job.At(ms), ms > 1000);
  }
  EXPECT_EQ(job.receiver.Silent(job.At(3500)), std::set<int>{7}) << "the arriving parts say so";
  EXPECT_NE(job.receiver.Describe(7, job.At(3500)).find("silent for 3.5 s; last seen in step 107"), std::string::npos)
      << job.receiver.Describe(7, job.At(3500));
  job.AllBeacon(job.At(4000), {7});
  deliver(job.At(4000), true);
  EXPECT_EQ(job.receiver.Silent(job.At(4000)), std::set<int>{7})
      << "the lost part's ranks are not silent 3.0 s after it last came";
  // 3.1 s after the last part last came, its ranks are not heard of: silent, named as such, each
  // for as long as since that part; the hub and the ranks of the other parts are not.
  const auto now = job.At(4100);
  ASSERT_EQ(never_covered.count(1023), 1u);
  ASSERT_GT(never_covered.size(), 100u);
  std::set<int> expected = never_covered;
  expected.insert(7);
  EXPECT_EQ(job.receiver.Silent(now), expected);
  EXPECT_FALSE(job.receiver.HubLost(now));
  EXPECT_NEAR(job.receiver.LongestSilence(now), 4.1, 1e-9) << "rank 7, silent since 0";
  EXPECT_NE(job.receiver.Describe(1023, now).find("not heard of for 3.1 s (rank 0's digests about it were lost)"),
            std::string::npos)
      << job.receiver.Describe(1023, now);
  // The part arrives again: its ranks are alive.
  job.AllBeacon(job.At(4500), {7});
  deliver(job.At(4500), false);
  EXPECT_EQ(job.receiver.Silent(job.At(4500)), std::set<int>{7});
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
    Liveness live(control, fast, "127.0.0.1", 0);
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

// The transport over IPv6: rank 0 offers only ::1 (as a host whose one address is IPv6 does),
// and the ranks find it, see each other and their progress. Skipped where the kernel has no IPv6.
TEST(Liveness, RanksOverIpv6OnlySeeEachOther) {
  const int probe = socket(AF_INET6, SOCK_DGRAM, 0);
  sockaddr_in6 loop{};
  loop.sin6_family = AF_INET6;
  loop.sin6_addr = in6addr_loopback;
  const bool ipv6 = probe >= 0 && bind(probe, reinterpret_cast<sockaddr*>(&loop), sizeof loop) == 0;
  if (probe >= 0) close(probe);
  if (!ipv6) GTEST_SKIP() << "no IPv6 loopback here";
  LivenessOptions fast;
  fast.beacon_interval_s = 0.05;
  fast.silent_after_s = 1;
  std::string seen_by_0, seen_by_1;
  testing::RunRanks(2, [&](ControlPlane& control) {
    Liveness live(control, fast, "::1", 0);
    Progress p;
    p.step = 20 + control.rank();
    live.Report(p);
    std::this_thread::sleep_for(milliseconds(400));
    EXPECT_TRUE(live.Silent().empty());
    EXPECT_FALSE(live.HubLost());
    (control.rank() == 0 ? seen_by_0 : seen_by_1) = live.Describe(1 - control.rank());
  });
  EXPECT_NE(seen_by_0.find("alive, in step 21"), std::string::npos) << seen_by_0;
  EXPECT_NE(seen_by_1.find("alive, in step 20"), std::string::npos) << seen_by_1;
}

// An address as the socket sends to it: IPv4 as ::ffff:a.b.c.d on the dual-stack socket, IPv6 as
// it is, anything else refused.
TEST(Liveness, AddressesOfIpv4AndIpv6HubsOnOneSocket) {
  const int fd = OpenLivenessSocket(0);
  const auto v4 = LivenessAddress(fd, "10.1.2.3", 29401);
  const auto v6 = LivenessAddress(fd, "fd00::7", 29401);
  ASSERT_TRUE(v4.has_value());
  EXPECT_FALSE(LivenessAddress(fd, "node-a", 29401).has_value());
  if (v4->ss_family == AF_INET6) {
    char text[INET6_ADDRSTRLEN] = {0};
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(*v4).sin6_addr, text, sizeof text);
    EXPECT_EQ(std::string(text), "::ffff:10.1.2.3");
    ASSERT_TRUE(v6.has_value());
    EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in6&>(*v6).sin6_port), 29401);
  } else {
    EXPECT_FALSE(v6.has_value()) << "an IPv4-only socket cannot send to an IPv6 address";
  }
  close(fd);
}

}  // namespace
}  // namespace trainguard
