// The training configuration the trainer tests start from: the synthetic dataset and a
// quarter-width model, with the batch size and seed each test chooses; tests set the rest.
#pragma once

#include "trainer/core/config.h"

namespace trainguard::testing {

inline TrainConfig SyntheticConfig(int64_t batch_size, uint64_t seed) {
  TrainConfig c;
  c.dataset = "synthetic";
  c.width = 0.25;
  c.batch_size = batch_size;
  c.seed = seed;
  return c;
}

}  // namespace trainguard::testing
