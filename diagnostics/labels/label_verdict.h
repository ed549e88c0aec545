// Label validation, the deciding part (pure: no Torch, no MPI). Each rank scans the labels of
// its shard into a ShardScan; the scans of all ranks are merged into one LabelReport, the same
// on every rank because the merge depends only on the gathered scans; the report's verdict and
// the policy decide what happens to each bad label: stop (fail), treat as unlabelled (ignore),
// or remove from the shard (drop). The collective part is in label_validation.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/core/sample.h"

namespace trainguard {

enum class LabelKind { kValid, kIgnored, kNegative, kTooLarge, kUnparsable };
constexpr int kLabelKinds = 5;

// "valid", "ignored", "negative", "too_large", "unparsable"
const char* LabelKindName(LabelKind kind);

enum class LabelAction { kFail, kIgnore, kDrop };

// Parses "fail", "ignore" or "drop"; returns false for anything else.
bool ParseLabelAction(const std::string& text, LabelAction* action);
const char* LabelActionName(LabelAction action);

// What to do with each kind of bad label.
struct LabelPolicy {
  LabelAction negative = LabelAction::kFail;    // < 0 and not the ignore index
  LabelAction too_large = LabelAction::kFail;   // >= num_classes
  LabelAction unparsable = LabelAction::kFail;  // present but not an integer
  // The action for a bad kind (negative, too large, unparsable).
  LabelAction For(LabelKind kind) const;
};

// Judges one label. Absent labels (no text) and labels equal to ignore_index are kIgnored:
// unlabelled is never an error. num_classes must be > 0.
LabelKind ClassifyLabel(const RawLabel& label, int64_t num_classes, int64_t ignore_index);

// One bad label, as the user must find it.
struct Offender {
  int rank = 0;
  int64_t index = 0;   // dataset index
  std::string source;  // file, or file#index
  std::string raw;     // the label as written
  LabelKind kind = LabelKind::kNegative;
};

// What one rank found in its shard.
struct ShardScan {
  std::vector<int64_t> counts = std::vector<int64_t>(kLabelKinds, 0);  // by LabelKind
  std::vector<int64_t> histogram;                                      // valid labels per class
  std::vector<Offender> offenders;  // the first `max_offenders` of each bad kind, by index
};

// Scans the labels of `samples` (dataset indices). num_classes > 0.
ShardScan ScanLabels(const SampleCatalog& catalog, const std::vector<int64_t>& samples, int rank, int64_t num_classes,
                     int64_t ignore_index, size_t max_offenders);

// The agreed result of a validation.
struct LabelReport {
  int64_t num_classes = 0;
  bool classes_inferred = false;
  int64_t ignore_index = -1;
  std::vector<int64_t> counts = std::vector<int64_t>(kLabelKinds, 0);
  std::vector<int64_t> histogram;
  std::vector<Offender> offenders;  // first K of each bad kind over all ranks, by index
  std::vector<std::string> warnings;
  bool failed = false;  // some bad kind has the fail action
  std::string hint;     // what to do, when failed
};

// Merges the scans of all ranks (in rank order) under the policy. Same inputs, same report.
LabelReport MergeScans(const std::vector<ShardScan>& scans, const LabelPolicy& policy, int64_t num_classes,
                       bool classes_inferred, int64_t ignore_index, size_t max_offenders);

// The human summary (several lines) and the JSON document of a report.
std::string FormatReport(const LabelReport& report);
std::string ReportJson(const LabelReport& report, const LabelPolicy& policy);

// Serialisation of a scan, to gather scans across ranks as bytes.
std::string EncodeScan(const ShardScan& scan);
ShardScan DecodeScan(const std::string& bytes);

}  // namespace trainguard
