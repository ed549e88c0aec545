// Collective label validation (see label_validation.h).
#include "diagnostics/labels/label_validation.h"

#include <algorithm>

namespace trainguard {
namespace {

int64_t InferClasses(ControlPlane& control, const SampleCatalog& catalog, const std::vector<int64_t>& samples,
                     int64_t ignore_index) {
  std::vector<int64_t> largest{-1};
  for (int64_t i : samples) {
    const RawLabel label = catalog.label(i);
    if (label.value && *label.value >= 0 && *label.value != ignore_index)
      largest[0] = std::max(largest[0], *label.value);
  }
  control.AllReduceMax(largest);
  return std::max<int64_t>(largest[0] + 1, 1);
}

}  // namespace

ValidatedShard ValidateLabels(ControlPlane& control, const SampleCatalog& catalog, const std::vector<int64_t>& shard,
                              int64_t unique_entries, const LabelCheckOptions& o) {
  const std::vector<int64_t> scanned(shard.begin(), shard.begin() + std::min<int64_t>(unique_entries, shard.size()));
  const bool infer = o.num_classes <= 0;
  const int64_t classes = infer ? InferClasses(control, catalog, scanned, o.ignore_index) : o.num_classes;

  const ShardScan mine = ScanLabels(catalog, scanned, control.rank(), classes, o.ignore_index, o.max_offenders);
  std::vector<ShardScan> all;
  for (const std::string& bytes : control.AllGather(EncodeScan(mine))) all.push_back(DecodeScan(bytes));

  ValidatedShard out;
  out.report = MergeScans(all, o.policy, classes, infer, o.ignore_index, o.max_offenders);
  // Apply the policy to every entry of the shard, padding included.
  for (int64_t i : shard) {
    const LabelKind kind = ClassifyLabel(catalog.label(i), classes, o.ignore_index);
    if (kind == LabelKind::kValid || kind == LabelKind::kIgnored) {
      out.shard.push_back(i);
      continue;
    }
    const LabelAction action = o.policy.For(kind);
    if (action == LabelAction::kDrop) continue;
    out.shard.push_back(i);  // kFail keeps it too: the report has failed and training stops
    if (action == LabelAction::kIgnore) out.ignored.push_back(i);
  }
  // Equal steps on every rank: pad to the largest kept shard by repeating kept samples; a rank
  // with nothing kept repeats its own samples as ignored targets (they add zero to the loss).
  std::vector<int64_t> size{static_cast<int64_t>(out.shard.size())};
  control.AllReduceMax(size);
  if (size[0] == 0) {
    out.report.failed = true;
    out.report.hint = "every sample was dropped, nothing is left to train on: fix the labels or change the policy";
    return out;
  }
  const bool nothing_kept = out.shard.empty();
  const std::vector<int64_t> repeat = nothing_kept ? shard : out.shard;
  for (size_t k = 0; static_cast<int64_t>(out.shard.size()) < size[0]; ++k) {
    out.shard.push_back(repeat[k % repeat.size()]);
    if (nothing_kept) out.ignored.push_back(out.shard.back());
  }
  std::sort(out.ignored.begin(), out.ignored.end());
  out.ignored.erase(std::unique(out.ignored.begin(), out.ignored.end()), out.ignored.end());
  return out;
}

}  // namespace trainguard
