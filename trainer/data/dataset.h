// The dataset interface every source implements (Fashion-MNIST, synthetic; image folders
// later). Metadata is cheap and separate from pixels, so that labels can be scanned without
// decoding. Implementations are immutable after construction and safe to read from threads.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "trainer/core/sample.h"

namespace trainguard {

// What the caller wants of the pixels.
struct ImageRequest {
  int64_t epoch = -1;  // >= 0: training, augmented from (seed, epoch, sample); -1: evaluation, no augmentation
};

// Model-ready images, and the rows that could not be read (zeros, only under a "skip" policy
// for unreadable files; the batch then ignores their targets).
struct ImageBatch {
  torch::Tensor images;  // [rows, C, H, W] float, normalised
  std::vector<size_t> unreadable;
};

struct ImageShape {
  int64_t channels = 1;
  int64_t height = 32;
  int64_t width = 32;
};

class Dataset : public SampleCatalog {
 public:
  // Shape of one image as the model sees it.
  virtual ImageShape shape() const = 0;
  // Number of classes the source defines (labels in [0, classes)).
  virtual int64_t num_classes() const = 0;
  // Model-ready images of the given samples. Throws DataError naming the file when one cannot be
  // read and the dataset's policy is to fail.
  virtual ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest& request) const = 0;
};

}  // namespace trainguard
