// Properties of DistributedSampler-style sharding over many (samples, world, seed), a resume on
// another world size included, with the ranks simulated in a loop.
#include "trainer/core/sharding.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace trainguard {
namespace {

std::vector<std::vector<int64_t>> AllShards(int64_t n, int world, uint64_t seed, int64_t epoch) {
  std::vector<std::vector<int64_t>> shards;
  for (int r = 0; r < world; ++r) shards.push_back(TrainShard({n, r, world, seed, epoch, true, {}}));
  return shards;
}

TEST(Sharding, ShardsCoverEverySampleWithEqualSizesAndOnlyPaddingRepeats) {
  for (int64_t n : {1, 2, 3, 5, 7, 10, 64, 97, 1000}) {
    for (int world : {1, 2, 3, 4, 7, 16}) {
      for (uint64_t seed : {0u, 1u, 42u}) {
        const auto shards = AllShards(n, world, seed, 3);
        std::map<int64_t, int> seen;
        for (const auto& s : shards) {
          ASSERT_EQ(static_cast<int64_t>(s.size()), TrainShardSize(n, world)) << n << " " << world;
          for (int64_t i : s) {
            ASSERT_GE(i, 0);
            ASSERT_LT(i, n);
            ++seen[i];
          }
        }
        ASSERT_EQ(static_cast<int64_t>(seen.size()), n) << "every sample is visited";
        const int64_t padding = TrainShardSize(n, world) * world - n;
        int64_t extra = 0;
        for (const auto& [index, count] : seen) extra += count - 1;
        ASSERT_EQ(extra, padding) << "only the padding repeats samples, n=" << n << " world=" << world;
      }
    }
  }
}

TEST(Sharding, FewerSamplesThanRanksStillGivesEveryRankOneSample) {
  const auto shards = AllShards(2, 5, 7, 0);
  for (const auto& s : shards) EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(StepsPerEpoch(TrainShardSize(2, 5), 64), 1);
}

TEST(Sharding, SameInputsGiveSameShardsAndEpochsReshuffle) {
  EXPECT_EQ(TrainShard({100, 1, 3, 9, 2, true, {}}), TrainShard({100, 1, 3, 9, 2, true, {}}));
  EXPECT_NE(TrainShard({100, 1, 3, 9, 2, true, {}}), TrainShard({100, 1, 3, 9, 3, true, {}}));
  EXPECT_NE(TrainShard({100, 1, 3, 9, 2, true, {}}), TrainShard({100, 1, 3, 10, 2, true, {}}));
}

TEST(Sharding, UnshuffledShardIsStrided) {
  EXPECT_EQ(TrainShard({7, 1, 3, 0, 0, false, {}}), (std::vector<int64_t>{1, 4, 0}));  // 0 is padding
}

TEST(Sharding, PermutationIsFixedForASeed) {
  // A pinned value: shuffling must not change between builds or platforms, or resumed runs
  // and multi-node runs would see different data orders.
  EXPECT_EQ(SeededPermutation(6, 1), SeededPermutation(6, 1));
  const auto p = SeededPermutation(1000, 5);
  EXPECT_EQ(std::set<int64_t>(p.begin(), p.end()).size(), 1000u);
}

TEST(Sharding, EvalShardsPartitionTheSamplesExactly) {
  for (int64_t n : {0, 1, 5, 10, 101}) {
    for (int world : {1, 2, 3, 8}) {
      std::multiset<int64_t> all;
      for (int r = 0; r < world; ++r) {
        for (int64_t i : EvalShard(n, r, world)) all.insert(i);
      }
      ASSERT_EQ(static_cast<int64_t>(all.size()), n);
      ASSERT_EQ(static_cast<int64_t>(std::set<int64_t>(all.begin(), all.end()).size()), n);
    }
  }
}

TEST(Sharding, StepsPerEpochRoundsUp) {
  EXPECT_EQ(StepsPerEpoch(10, 3), 4);
  EXPECT_EQ(StepsPerEpoch(9, 3), 3);
  EXPECT_EQ(StepsPerEpoch(1, 64), 1);
}

// The global order of a rank-interleaved set of shards: position p is rank p % world's entry p / world.
std::vector<int64_t> Interleave(const std::vector<std::vector<int64_t>>& shards) {
  std::vector<int64_t> order;
  for (size_t k = 0; k < shards[0].size(); ++k) {
    for (const auto& s : shards) order.push_back(s[k]);
  }
  return order;
}

TEST(Sharding, ExcludedSamplesLeaveAndTheOthersKeepTheirOrder) {
  for (int64_t n : {10, 97}) {
    for (int world : {1, 2, 3}) {
      const std::vector<int64_t> excluded{1, 4, 4, 9, 500};  // a repeat and an index past the end change nothing
      std::vector<std::vector<int64_t>> shards;
      for (int r = 0; r < world; ++r) shards.push_back(TrainShard({n, r, world, 7, 2, true, excluded}));
      const int64_t kept = KeptSamples(n, excluded);
      ASSERT_EQ(kept, n - 3);
      for (const auto& s : shards) ASSERT_EQ(static_cast<int64_t>(s.size()), TrainShardSize(kept, world));
      // Without the excluded indices, the global order is the unexcluded one with them removed.
      std::vector<int64_t> expected = Interleave(AllShards(n, world, 7, 2));
      expected.resize(static_cast<size_t>(n));  // drop the padding
      expected.erase(
          std::remove_if(expected.begin(), expected.end(), [](int64_t i) { return i == 1 || i == 4 || i == 9; }),
          expected.end());
      std::vector<int64_t> order = Interleave(shards);
      order.resize(static_cast<size_t>(kept));
      EXPECT_EQ(order, expected) << n << " samples, world " << world;
    }
  }
}

// The epoch's order of kept samples, unpadded: the shard of a world of one.
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch, const std::vector<int64_t>& excluded = {}) {
  return TrainShard({n, 0, 1, seed, epoch, true, excluded});
}

TEST(Sharding, ResumeOnAnotherWorldTrainsEverySampleOnceAcrossTheCheckpoint) {
  for (int64_t n : {1, 2, 5, 7, 10, 64, 97}) {
    const std::vector<int64_t> order = EpochOrder(n, 11, 4);
    for (int64_t batch : {1, 3, 8}) {
      for (int before : {1, 2, 3, 4}) {
        const int64_t steps = StepsPerEpoch(TrainShardSize(n, before), batch);
        for (int64_t s = 0; s < steps; ++s) {
          const int64_t start = TrainedEntries(0, s, batch, before, n);
          ASSERT_LT(start, n) << "mid-epoch, a prefix of the order is trained";
          ASSERT_EQ(start, s * batch * before);
          for (int after : {1, 2, 3, 4}) {
            std::map<int64_t, int> trained;
            for (int64_t p = 0; p < start; ++p) ++trained[order[static_cast<size_t>(p)]];
            for (int r = 0; r < after; ++r) {
              const auto shard = TrainShard({n, r, after, 11, 4, true, {}, start});
              ASSERT_EQ(static_cast<int64_t>(shard.size()), TrainShardSize(n - start, after)) << "equal sizes";
              const int64_t unique = UniqueShardEntries(n - start, r, after);
              for (int64_t k = 0; k < unique; ++k) ++trained[shard[static_cast<size_t>(k)]];
              for (int64_t k = unique; k < static_cast<int64_t>(shard.size()); ++k) {
                const int64_t position = start + r + k * after;  // padding repeats the epoch's start
                ASSERT_EQ(shard[static_cast<size_t>(k)], order[static_cast<size_t>((position - n) % n)]);
              }
            }
            ASSERT_EQ(static_cast<int64_t>(trained.size()), n)
                << n << " samples, batch " << batch << ", step " << s << " of " << before << " ranks, on " << after;
            for (const auto& [index, count] : trained) ASSERT_EQ(count, 1) << "sample " << index;
          }
        }
      }
    }
  }
}

TEST(Sharding, ResumeOnTheSameWorldIsTheTailOfTheWholeShard) {
  for (int64_t n : {1, 7, 10, 97}) {
    for (int world : {1, 2, 3, 4}) {
      for (int64_t batch : {1, 3, 8}) {
        const int64_t steps = StepsPerEpoch(TrainShardSize(n, world), batch);
        for (int64_t s = 0; s < steps; ++s) {
          for (int r = 0; r < world; ++r) {
            const auto whole = TrainShard({n, r, world, 5, 1, true, {3}});
            const auto tail = TrainShard({n, r, world, 5, 1, true, {3}, s * batch * world});
            ASSERT_EQ(tail, std::vector<int64_t>(whole.begin() + s * batch, whole.end()))
                << n << " samples, world " << world << ", batch " << batch << ", step " << s << ", rank " << r;
          }
        }
      }
    }
  }
}

TEST(Sharding, TrainedEntriesStopAtTheKeptCount) {
  EXPECT_EQ(TrainedEntries(0, 0, 8, 3, 100), 0);
  EXPECT_EQ(TrainedEntries(24, 2, 8, 2, 100), 56);
  EXPECT_EQ(TrainedEntries(96, 1, 8, 2, 100), 100);
}

TEST(Sharding, StartAtTheEndGivesEmptyShardsAndPastItIsRefused) {
  EXPECT_TRUE(TrainShard({10, 1, 3, 0, 0, true, {}, 10}).empty());
  EXPECT_THROW(TrainShard({10, 0, 3, 0, 0, true, {}, 11}), std::invalid_argument);
  EXPECT_THROW(TrainShard({10, 0, 3, 0, 0, true, {4}, 10}), std::invalid_argument);  // 9 kept
  EXPECT_THROW(TrainShard({10, 0, 3, 0, 0, true, {}, -1}), std::invalid_argument);
}

TEST(Sharding, ExcludingEverySampleIsRefused) {
  EXPECT_THROW(TrainShard({2, 0, 1, 0, 0, true, {0, 1}}), std::invalid_argument);
}

TEST(Sharding, RejectsRankOutsideWorld) {
  EXPECT_THROW(TrainShard({10, 3, 3, 0, 0, true, {}}), std::invalid_argument);
  EXPECT_THROW(TrainShard({0, 0, 1, 0, 0, true, {}}), std::invalid_argument);
}

}  // namespace
}  // namespace trainguard
