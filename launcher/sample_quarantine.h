// SampleQuarantine: --bad-samples quarantine on the launcher's side (the trainer's BadSamples).
// It reads the quarantine file at start (those samples are never trained on), and when a step
// fails on this rank it takes the samples the diagnosis named (BUNDLE/diagnosis.json), appends
// them to the file within the --max-quarantined budget, logs them, and counts them on rank 0.
#pragma once

#include <string>
#include <vector>

#include "diagnostics/faults/fault_guard.h"
#include "diagnostics/faults/quarantine.h"
#include "diagnostics/metrics/metrics.h"
#include "trainer/bad_samples.h"
#include "trainer/core/config.h"

namespace trainguard {

class SampleQuarantine final : public BadSamples {
 public:
  // Reads the file (--quarantine, or <--checkpoint>.quarantine). Throws ConfigError for a bad
  // --max-quarantined and QuarantineError for an unreadable file; both name what to fix.
  // `guard` gives the bundle of this rank's failed step; `metrics` may be null.
  SampleQuarantine(const TrainConfig& config, int64_t dataset_size, const FaultGuard& guard, int rank,
                   Metrics* metrics);

  // The quarantine file of `config` (--bad-samples quarantine).
  static std::string FileOf(const TrainConfig& config);

  std::vector<int64_t> SetAside() const override;
  QuarantineVerdict Quarantine(const StepFailure& failure) override;
  void OnSetAside(const std::vector<int64_t>& samples, int64_t failed_step, int64_t resumed_step) override;

  // Rank 0, at the end of the run: every sample the file holds, one per line ("" when none).
  std::string Summary() const;
  // Every sample the file holds, as a JSON array of its records (for the label report).
  std::string Json() const;

 private:
  // The samples the diagnosis of this rank's bundle named; sets *why when there are none.
  std::vector<QuarantinedSample> Named(const StepFailure& failure, std::string* why) const;

  std::string file_;
  std::string budget_text_;
  int64_t budget_;
  const FaultGuard& guard_;
  int rank_;
  Metrics* metrics_;
  std::vector<QuarantinedSample> at_start_;
};

}  // namespace trainguard
