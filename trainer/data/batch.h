// A batch as the model sees it, with the sample ids needed to name a failing sample.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "trainer/data/dataset.h"

namespace trainguard {

struct Batch {
  torch::Tensor images;          // [B, C, H, W] float
  torch::Tensor targets;         // [B] int64; unlabelled samples carry the ignore index
  std::vector<int64_t> indices;  // dataset index of each row
  int64_t valid_targets = 0;     // rows whose target is not the ignore index
};

// Builds the batch of the given samples. A sample without a numeric label, listed in `ignored`
// (sorted dataset indices, e.g. bad labels under the "ignore" policy), or whose file could not
// be read under a "skip" policy, gets ignore_index.
Batch MakeBatch(const Dataset& dataset, const std::vector<int64_t>& indices, int64_t ignore_index,
                const std::vector<int64_t>& ignored = {}, const ImageRequest& request = {});

// The slice [begin, begin + count) of `indices`, clamped to its end.
std::vector<int64_t> Slice(const std::vector<int64_t>& indices, int64_t begin, int64_t count);

}  // namespace trainguard
