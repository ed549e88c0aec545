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
  m.SetPhase("evaluating");
  m.OnProgress();
  m.SetProgressDeadline(330);
  m.AddUnreadableImages(2);
  m.AddQuarantinedSamples(3);
  m.OnFinished();
  m.OnFailure("stall", 6);
  m.SetGpuMemory(1 << 20, 2 << 20);
  GpuHealth gpu;
  gpu.bus_id = "0000:3B:00.0";
  gpu.utilization_ratio = 0.5;
  gpu.memory_used_bytes = 1 << 30;
  gpu.memory_total_bytes = 80ULL << 30;
  gpu.temperature_celsius = 60;
  gpu.power_watts = 300.5;
  gpu.throttle_reasons = 0x4;
  gpu.ecc_corrected = 2;
  gpu.ecc_uncorrected = 0;
  m.SetGpuHealth(gpu);
  m.OnGpuEvent({"0000:3B:00.0", GpuEvent::Kind::kXid, 79});
  m.OnGpuEvent({"0000:3B:00.0", GpuEvent::Kind::kDoubleBitEcc, 0});
}

}  // namespace trainguard::testing
