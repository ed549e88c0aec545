// Test accuracy across ranks: each rank scores its evaluation shard (every sample exactly once
// over all ranks) and the counts are summed over the control plane.
#pragma once

#include <torch/torch.h>

#include <functional>

#include "trainer/core/control_plane.h"
#include "trainer/data/dataset.h"
#include "trainer/data/prefetcher.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {

struct Accuracy {
  int64_t correct = 0;
  int64_t total = 0;  // samples with a label in [0, num_classes)
  double fraction() const { return total > 0 ? static_cast<double>(correct) / total : 0.0; }
};

// Leaves the model in eval mode; the caller switches back to train(). Batches are built ahead
// as `loader` says; `on_batch` (when set) is called after each batch is queued.
Accuracy Evaluate(Hw3Net& model, const Dataset& dataset, ControlPlane& control, torch::Device device,
                  int64_t batch_size, int64_t ignore_index, const LoaderOptions& loader,
                  const std::function<void()>& on_batch = {});

}  // namespace trainguard
