// Batch assembly from a Dataset.
#include "trainer/data/batch.h"

#include <algorithm>

namespace trainguard {

Batch MakeBatch(const Dataset& dataset, const std::vector<int64_t>& indices, int64_t ignore_index,
                const std::vector<int64_t>& ignored) {
  Batch batch;
  batch.indices = indices;
  batch.images = dataset.Images(indices);
  std::vector<int64_t> targets;
  targets.reserve(indices.size());
  for (int64_t i : indices) {
    const bool skip = std::binary_search(ignored.begin(), ignored.end(), i);
    const int64_t t = skip ? ignore_index : dataset.label(i).value.value_or(ignore_index);
    targets.push_back(t);
    if (t != ignore_index) ++batch.valid_targets;
  }
  batch.targets = torch::tensor(targets, torch::kInt64);
  return batch;
}

std::vector<int64_t> Slice(const std::vector<int64_t>& indices, int64_t begin, int64_t count) {
  const auto first = std::min<size_t>(static_cast<size_t>(begin), indices.size());
  const auto last = std::min<size_t>(first + static_cast<size_t>(count), indices.size());
  return {indices.begin() + first, indices.begin() + last};
}

}  // namespace trainguard
