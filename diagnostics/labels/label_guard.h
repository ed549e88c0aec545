// LabelGuard: validates the labels of every rank's shard before each epoch (a TrainObserver the
// launcher plugs into the trainer), and serves `trainguard validate`. Rank 0 prints the summary
// and writes the JSON report; when the verdict is "fail" every rank throws LabelError before the
// epoch's first step, so no bad label reaches the loss. Pure: no Torch, no MPI.
#pragma once

#include <functional>
#include <string>

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
  // A JSON object written under "images" in the report file (the dataset doctor's findings).
  void set_images_json(std::string json) { images_json_ = std::move(json); }
  // Called with every report, before its verdict applies (for metrics).
  void set_on_report(std::function<void(const LabelReport&)> on_report) { on_report_ = std::move(on_report); }

 private:
  ControlPlane& control_;
  const SampleCatalog& catalog_;
  LabelCheckOptions options_;
  std::string report_path_;
  LabelReport report_;
  std::function<void(const LabelReport&)> on_report_;
  std::string images_json_;
};

}  // namespace trainguard
