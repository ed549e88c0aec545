// Prediction over a dataset across ranks, and HW3's submission CSV ("Id,Category", one row per
// image, Id the file name without folder and extension, rows sorted by Id).
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "trainer/core/control_plane.h"
#include "trainer/data/dataset.h"
#include "trainer/data/prefetcher.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {

// Collective: every rank predicts its evaluation shard, with batches built ahead as `loader`
// says; every rank gets all (index, class) pairs, sorted by index.
std::vector<std::pair<int64_t, int64_t>> PredictAll(Hw3Net& model, const Dataset& dataset, ControlPlane& control,
                                                    torch::Device device, int64_t batch_size,
                                                    const LoaderOptions& loader);

std::string SubmissionCsv(const Dataset& dataset, const std::vector<std::pair<int64_t, int64_t>>& predictions);

// Two lines for the user: how many images were predicted and how many of them carry no label
// (HW3's test images), then the count of predictions per class.
std::string PredictionSummary(const Dataset& dataset, const std::vector<std::pair<int64_t, int64_t>>& predictions);

}  // namespace trainguard
