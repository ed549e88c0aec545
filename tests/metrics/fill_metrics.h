// Gives every trainguard_* family of a Metrics at least one series, as a short run would.
#pragma once

#include "diagnostics/metrics/metrics.h"

namespace trainguard::testing {

inline void FillEveryFamily(Metrics& m) {
  m.SetRunInfo({"0.1.0", "mpi", "cpu", "fp32"});
  m.SetLabelCounts({90, 5, 2, 2, 1}, {30, 30, 30});
  m.OnStep(0.12, 64, 2.3, 0.01, 0.02, 3);
  m.OnStep(0.08, 64, 2.1, 0.0, 0.03, 0);
  m.OnEpochEnd(1, 2.2, 0.41, 0.39, 512.5);
  m.OnCheckpoint(0.4, 123456);
  m.AddUnreadableImages(2);
  m.OnFailure("stall", 6);
  m.SetGpuMemory(1 << 20, 2 << 20);
}

}  // namespace trainguard::testing
