// Agreement on failure across ranks (RunAgreed), with ranks simulated as threads.
#include "trainer/core/control_plane.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "tests/support/thread_control_plane.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

using testing::RunRanks;

TEST(ControlPlane, SumAcrossRanksAddsEveryRank) {
  for (int world : {1, 2, 3, 5}) {
    std::atomic<int> wrong{0};
    RunRanks(world, [&](ControlPlane& c) {
      if (SumAcrossRanks(c, c.rank() + 1) != world * (world + 1) / 2) ++wrong;
    });
    EXPECT_EQ(wrong, 0) << "world " << world;
  }
}

TEST(ControlPlane, FailureOnOneRankStopsEveryRankAndNamesIt) {
  std::mutex m;
  std::vector<std::string> messages(3);
  std::vector<bool> peer(3, false);
  std::vector<ErrorKind> kinds(3, ErrorKind::kInternal);
  RunRanks(3, [&](ControlPlane& c) {
    try {
      RunAgreed(c, [&] {
        if (c.rank() == 1) throw DataError("file x.jpg is truncated");
      });
    } catch (const PeerError& e) {
      std::lock_guard<std::mutex> lock(m);
      peer[static_cast<size_t>(c.rank())] = true;
      kinds[static_cast<size_t>(c.rank())] = e.origin();
      messages[static_cast<size_t>(c.rank())] = e.what();
    } catch (const DataError& e) {
      std::lock_guard<std::mutex> lock(m);
      messages[static_cast<size_t>(c.rank())] = e.what();
    }
  });
  EXPECT_TRUE(peer[0]);
  EXPECT_FALSE(peer[1]) << "the failing rank rethrows its own error";
  EXPECT_TRUE(peer[2]);
  EXPECT_EQ(messages[0], "rank 1 failed: file x.jpg is truncated");
  EXPECT_EQ(kinds[0], ErrorKind::kData) << "peers learn the kind of the failure, for the exit code";
  EXPECT_EQ(messages[1], "file x.jpg is truncated");
}

TEST(ControlPlane, LowestFailingRankIsReported) {
  std::vector<std::string> messages(4);
  std::mutex m;
  RunRanks(4, [&](ControlPlane& c) {
    try {
      RunAgreed(c, [&] {
        if (c.rank() >= 2) throw Error("boom on " + std::to_string(c.rank()));
      });
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(m);
      messages[static_cast<size_t>(c.rank())] = e.what();
    }
  });
  EXPECT_EQ(messages[0], "rank 2 failed: boom on 2");
  EXPECT_EQ(messages[3], "boom on 3");
}

TEST(ControlPlane, NoFailureMeansNoThrow) {
  std::atomic<int> threw{0};
  RunRanks(3, [&](ControlPlane& c) {
    try {
      RunAgreed(c, [] {});
    } catch (...) {
      ++threw;
    }
  });
  EXPECT_EQ(threw, 0);
}

}  // namespace
}  // namespace trainguard
