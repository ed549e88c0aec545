// Which GPUs the fused kernels' architecture list covers: exact cubins within a major version,
// PTX for every later GPU.
#include "trainer/core/cuda_archs.h"

#include <gtest/gtest.h>

namespace trainguard {
namespace {

TEST(CudaArchs, CubinsRunWithinTheirMajorVersionOnly) {
  EXPECT_TRUE(ArchListRuns("8.0;9.0", 8, 0));    // A100
  EXPECT_TRUE(ArchListRuns("8.0;9.0", 8, 6));    // an RTX 30xx runs 8.0's cubin
  EXPECT_TRUE(ArchListRuns("8.0;9.0", 9, 0));    // H100, H200
  EXPECT_FALSE(ArchListRuns("8.0;9.0", 10, 0));  // a B200 needs PTX
  EXPECT_FALSE(ArchListRuns("8.0;9.0", 7, 5));   // a T4 is older than every entry
}

TEST(CudaArchs, PtxRunsOnEveryLaterGpu) {
  EXPECT_TRUE(ArchListRuns("8.0;9.0+PTX", 10, 0));
  EXPECT_TRUE(ArchListRuns("8.0 9.0+PTX", 12, 0));  // CMake's list, as the build passes it
  EXPECT_FALSE(ArchListRuns("8.0;9.0+PTX", 7, 0));
  EXPECT_FALSE(ArchListRuns("", 9, 0));
}

}  // namespace
}  // namespace trainguard
