// Fashion-MNIST from its gzip'd IDX files (Debian: dataset-fashion-mnist,
// /usr/share/datasets/fashion-mnist). Images are 28x28 grayscale; they are scaled to [0,1],
// normalised with the training set's mean and std, and zero-padded to 32x32 so that the five
// pooling stages of the HW3 classifier divide evenly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "trainer/data/dataset.h"

namespace trainguard {

enum class Split { kTrain, kTest };

// The split as stored: 28x28 uint8 images and their labels.
struct RawFashionMnist {
  std::string image_path;
  std::vector<uint8_t> pixels;  // count * 784
  std::vector<uint8_t> labels;  // count
};

// Reads the split from `dir`; keeps only the first `limit` samples when limit > 0.
// Throws DataError naming the file when it is missing or malformed.
RawFashionMnist ReadFashionMnist(const std::string& dir, Split split, int64_t limit);

// The split as a Dataset (see above for the preprocessing).
std::unique_ptr<Dataset> LoadFashionMnist(const std::string& dir, Split split, int64_t limit);

// Writes a food-11-style folder from Fashion-MNIST: out/training/<class>_<n>.jpg from the
// training split, out/validation/<class>_<n>.jpg and out/test/<n>.jpg (unlabelled) from the test
// split; grayscale JPEGs, quality 90. Returns the number of files written.
int64_t WriteFood11Folder(const RawFashionMnist& train, const RawFashionMnist& test, const std::string& out);

}  // namespace trainguard
