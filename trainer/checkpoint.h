// Checkpoints: model (parameters and buffers), optimizer state, position in training and the
// Torch CPU generator state. File layout: the line "TRAINGUARD-CHECKPOINT 1\n", the payload size
// (8 bytes, little-endian), its CRC-32 (4 bytes), then the payload (a Torch archive). Written
// atomically; a file that is truncated, corrupted, or from another run shape is refused with
// CheckpointError naming it.
#pragma once

#include <torch/torch.h>

#include <string>

namespace trainguard {

// Where training stands; `step_in_epoch` steps of `epoch` are done.
struct TrainPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;
  int64_t global_step = 0;
  bool operator==(const TrainPosition& o) const {
    return epoch == o.epoch && step_in_epoch == o.step_in_epoch && global_step == o.global_step;
  }
};

// What must match for a resume to continue the same run.
struct RunShape {
  int64_t world = 1;
  int64_t batch_size = 0;
  int64_t train_samples = 0;
  int64_t seed = 0;
};

// Writes the checkpoint atomically (temporary file, rename); returns its size in bytes.
int64_t SaveCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                       const TrainPosition& position, const RunShape& shape);

// Loads into model and optimizer and restores the generator; returns the position to continue
// from. Throws CheckpointError if the file is unusable or `shape` differs from the saved one.
TrainPosition LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             const RunShape& shape);

// Loads only the model's weights (for prediction). Throws CheckpointError like LoadCheckpoint.
void LoadModelWeights(const std::string& path, torch::nn::Module& model);

}  // namespace trainguard
