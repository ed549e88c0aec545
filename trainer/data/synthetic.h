// A seeded synthetic image dataset for tests: each class has a fixed random prototype, and a
// sample is its class prototype plus noise, so a model can learn it. Everything depends only on
// the options, so every rank and every run sees the same data. Labels can be overridden per
// sample to plant unlabelled or bad labels.
#pragma once

#include <map>
#include <memory>

#include "trainer/data/dataset.h"

namespace trainguard {

struct SyntheticOptions {
  int64_t samples = 2048;
  int64_t classes = 10;
  ImageShape shape{1, 32, 32};
  uint64_t seed = 0;
  double noise = 0.5;                           // std of the per-sample noise
  std::map<int64_t, RawLabel> label_overrides;  // sample index -> label to report instead
};

std::unique_ptr<Dataset> MakeSyntheticDataset(const SyntheticOptions& options);

}  // namespace trainguard
