// Batch assembly from a Dataset.
#include "trainer/data/batch.h"

#include <algorithm>

namespace trainguard {

Batch MakeBatch(const Dataset& dataset, const std::vector<int64_t>& indices, int64_t ignore_index,
                const std::vector<int64_t>& ignored, const ImageRequest& request) {
  Batch batch;
  batch.indices = indices;
  ImageBatch pixels = dataset.Images(indices, request);
  batch.images = std::move(pixels.images);
  std::vector<int64_t> targets;
  targets.reserve(indices.size());
  for (size_t row = 0; row < indices.size(); ++row) {
    const int64_t i = indices[row];
    const bool skip = std::binary_search(ignored.begin(), ignored.end(), i) ||
                      std::find(pixels.unreadable.begin(), pixels.unreadable.end(), row) != pixels.unreadable.end();
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
