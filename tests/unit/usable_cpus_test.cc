// The CPUs a process may use: the quota arithmetic (the affinity set and the cgroup files are
// read by e2e.threads_follow_cpu_limits, under a real CPU set and a real quota).
#include "trainer/core/usable_cpus.h"

#include <gtest/gtest.h>

namespace trainguard {
namespace {

TEST(UsableCpus, QuotaIsRoundedUpAndNoQuotaIsNoLimit) {
  EXPECT_EQ(QuotaCpus(50000, 100000), 1);
  EXPECT_EQ(QuotaCpus(150000, 100000), 2);
  EXPECT_EQ(QuotaCpus(400000, 100000), 4);
  EXPECT_EQ(QuotaCpus(-1, 100000), 0);  // cgroup v1's "no limit"
  EXPECT_EQ(QuotaCpus(100000, 0), 0);
}

TEST(UsableCpus, AtLeastOne) { EXPECT_GE(UsableCpus(), 1); }

}  // namespace
}  // namespace trainguard
