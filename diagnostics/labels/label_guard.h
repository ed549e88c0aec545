// LabelGuard: validates the labels of every rank's shard before each epoch (a TrainObserver the
// launcher plugs into the trainer), and serves `trainguard validate`. Rank 0 prints the summary
// and writes the JSON report; when the verdict is "fail" every rank throws LabelError before the
// epoch's first step, so no bad label reaches the loss. Pure: no Torch, no MPI.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "diagnostics/labels/label_validation.h"
#include "trainer/observer.h"

namespace trainguard {

class LabelGuard final : public TrainObserver {
 public:
  // `report_path`: where rank 0 writes the JSON report (empty: nowhere).
  LabelGuard(ControlPlane& control, const SampleCatalog& catalog, LabelCheckOptions options, std::string report_path);

  // Validates plan.shard and applies the policy to it. Throws LabelError on a failed verdict.
  void OnEpochBegin(int64_t epoch, EpochPlan& plan) override;

  // The report of the last validation.
  const LabelReport& report() const { return report_; }
  // A section of the report file: `json()` gives its JSON text each time rank 0 writes the file
  // (the dataset doctor's "images", the quarantine's "set_aside").
  void add_section(std::string key, std::function<std::string()> json) {
    sections_.emplace_back(std::move(key), std::move(json));
  }
  // Called with every report, before its verdict applies (for metrics).
  void set_on_report(std::function<void(const LabelReport&)> on_report) { on_report_ = std::move(on_report); }

 private:
  ControlPlane& control_;
  const SampleCatalog& catalog_;
  LabelCheckOptions options_;
  std::string report_path_;
  LabelReport report_;
  std::function<void(const LabelReport&)> on_report_;
  std::vector<std::pair<std::string, std::function<std::string()>>> sections_;
};

}  // namespace trainguard
