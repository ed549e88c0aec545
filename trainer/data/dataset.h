// The dataset interface every source implements (Fashion-MNIST, synthetic; image folders
// later). Metadata is cheap and separate from pixels, so that labels can be scanned without
// decoding. Implementations are immutable after construction and safe to read from threads.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "trainer/core/sample.h"

namespace trainguard {

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
  // Model-ready float images [indices.size(), C, H, W] for the given samples, normalised.
  virtual torch::Tensor Images(const std::vector<int64_t>& indices) const = 0;
};

}  // namespace trainguard
