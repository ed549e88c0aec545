// Label validation, the collective part: every rank scans the labels of its shard, the scans
// are gathered over the control plane and merged into the same LabelReport on every rank, and
// the policy is applied to this rank's shard (bad labels ignored or dropped; after a drop the
// shards are padded back to one size so every rank runs the same steps). Pure: no Torch, no MPI.
#pragma once

#include <vector>

#include "diagnostics/labels/label_verdict.h"
#include "trainer/core/control_plane.h"
#include "trainer/core/sample.h"

namespace trainguard {

struct LabelCheckOptions {
  LabelPolicy policy;
  int64_t num_classes = 0;  // 0: infer as (largest non-negative label over all ranks) + 1
  int64_t ignore_index = -1;
  size_t max_offenders = 10;  // offenders listed per kind
};

struct ValidatedShard {
  LabelReport report;            // the same on every rank
  std::vector<int64_t> shard;    // this rank's shard after the policy; equal size on every rank
  std::vector<int64_t> ignored;  // sorted dataset indices whose targets become the ignore index
};

// Collective. `shard` is this rank's shard; its first `unique_entries` entries are scanned (the
// rest is sampler padding, which repeats samples another rank scans). When every label is
// dropped the report fails.
ValidatedShard ValidateLabels(ControlPlane& control, const SampleCatalog& catalog, const std::vector<int64_t>& shard,
                              int64_t unique_entries, const LabelCheckOptions& options);

}  // namespace trainguard
