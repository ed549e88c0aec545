// The data plane factory's decisions that need no GPU: c10d's collective timeout.
#include "trainer/comm/data_plane_factory.h"

#include <gtest/gtest.h>

namespace trainguard {
namespace {

TEST(DataPlaneFactory, NcclTimesOutWellAfterTheStallVerdict) {
  EXPECT_DOUBLE_EQ(NcclTimeoutFor(5), 65);     // at least a minute after a short --step-timeout
  EXPECT_DOUBLE_EQ(NcclTimeoutFor(300), 600);  // twice a long one
  for (double step : {0.5, 5.0, 60.0, 300.0, 3600.0}) EXPECT_GE(NcclTimeoutFor(step) - step, 60);
}

}  // namespace
}  // namespace trainguard
