// Bucket assignment: every parameter exactly once, in ready order, within the cap.
#include "trainer/core/buckets.h"

#include <gtest/gtest.h>

namespace trainguard {
namespace {

TEST(Buckets, PacksInOrderWithinTheCap) {
  const auto b = AssignBuckets({40, 40, 40, 10, 100}, 100);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(b[1], (std::vector<size_t>{2, 3}));
  EXPECT_EQ(b[2], (std::vector<size_t>{4}));
}

TEST(Buckets, OversizedParameterGetsABucketOfItsOwn) {
  const auto b = AssignBuckets({10, 500, 10}, 100);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[1], (std::vector<size_t>{1}));
}

TEST(Buckets, EveryIndexAppearsOnce) {
  std::vector<int64_t> sizes;
  for (int i = 0; i < 50; ++i) sizes.push_back((i * 37) % 90 + 1);
  std::vector<int> count(sizes.size(), 0);
  for (const auto& bucket : AssignBuckets(sizes, 120)) {
    int64_t total = 0;
    for (size_t i : bucket) {
      ++count[i];
      total += sizes[i];
    }
    EXPECT_TRUE(total <= 120 || bucket.size() == 1);
  }
  for (int c : count) EXPECT_EQ(c, 1);
}

TEST(Buckets, NoParametersGiveNoBuckets) { EXPECT_TRUE(AssignBuckets({}, 100).empty()); }

}  // namespace
}  // namespace trainguard
