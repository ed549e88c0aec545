// Fashion-MNIST from its gzip'd IDX files (Debian: dataset-fashion-mnist,
// /usr/share/datasets/fashion-mnist). Images are 28x28 grayscale; they are scaled to [0,1],
// normalised with the training set's mean and std, and zero-padded to 32x32 so that the five
// pooling stages of the HW3 classifier divide evenly.
#pragma once

#include <memory>
#include <string>

#include "trainer/data/dataset.h"

namespace trainguard {

enum class Split { kTrain, kTest };

// Loads the split from `dir`; keeps only the first `limit` samples when limit > 0.
// Throws DataError naming the file when it is missing or malformed.
std::unique_ptr<Dataset> LoadFashionMnist(const std::string& dir, Split split, int64_t limit);

}  // namespace trainguard
