// Checkpoints: model (parameters and buffers), optimizer state, position in training, the Torch
// CPU generator state, and where the file came from (the world size that wrote it and when).
// File layout: the line "TRAINGUARD-CHECKPOINT 1\n", the payload size (8 bytes, little-endian),
// its CRC-32 (4 bytes), then the payload (a Torch archive). Written atomically; a file that is
// truncated, corrupted, of another model, or of another run shape (batch size, training samples,
// seed: what decides the epoch's order) is refused with CheckpointError naming it. The world
// size may differ: the position counts the samples of the epoch trained, not steps of one world.
#pragma once

#include <torch/torch.h>

#include <string>

#include "trainer/core/control_plane.h"

namespace trainguard {

// Where training stands; `step_in_epoch` steps of `epoch` are done.
struct TrainPosition {
  int64_t epoch = 0;
  int64_t step_in_epoch = 0;  // on whatever world sizes did them
  int64_t global_step = 0;
  int64_t samples_in_epoch = 0;  // leading entries of the epoch's order trained (ShardSpec::start)
  bool operator==(const TrainPosition& o) const {
    return epoch == o.epoch && step_in_epoch == o.step_in_epoch && global_step == o.global_step &&
           samples_in_epoch == o.samples_in_epoch;
  }
};

// The run that writes or resumes a checkpoint. All but `world` must match for a resume to
// continue the same run; `world` is stored as information.
struct RunShape {
  int64_t world = 1;
  int64_t batch_size = 0;  // per rank
  int64_t train_samples = 0;
  int64_t seed = 0;
};

// Where a loaded checkpoint came from.
struct CheckpointOrigin {
  int64_t world = 0;       // ranks of the run that wrote it
  int64_t batch_size = 0;  // per rank, of the run that wrote it
  int64_t written_at = 0;  // unix seconds; 0 when the file does not say
};

// Writes the checkpoint atomically (temporary file, rename), with the time now; returns its size
// in bytes.
int64_t SaveCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                       const TrainPosition& position, const RunShape& shape);

// Loads into model and optimizer and restores the generator; returns the position to continue
// from, and fills `origin` when given. A file without `samples_in_epoch` gives step_in_epoch *
// batch size * its world. Throws CheckpointError if the file is unusable, of another model, or
// `shape` differs from the saved one in anything but the world size.
TrainPosition LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                             const RunShape& shape, CheckpointOrigin* origin = nullptr);

// LoadCheckpoint, collective over `control`: rank 0 alone reads the file and broadcasts its bytes,
// every rank loads from them (one read of the shared file, not one per rank). A file rank 0
// cannot read stops every rank (its CheckpointError there, a PeerError quoting it elsewhere: both
// name the file); a file that is unusable is refused by every rank with its own CheckpointError.
// The file must be under 2 GiB (one MPI broadcast).
TrainPosition LoadCheckpointShared(ControlPlane& control, const std::string& path, torch::nn::Module& model,
                                   torch::optim::Optimizer& optimizer, const RunShape& shape,
                                   CheckpointOrigin* origin = nullptr);

// Rank 0's line on a resume, e.g. "resuming from checkpoint ckpt written 2026-12-07 21:50:12 UTC:
// epoch 1, step 5 of the epoch, global step 5, 240 of 3000 samples of the epoch done, written by
// 3 ranks, resumed on 2: the per-rank batch stays 16, the global batch goes from 48 to 32".
// `epoch_samples`: the samples of the epoch's order (K); `world`, `batch_size`: of this run.
std::string ResumeLine(const std::string& path, const CheckpointOrigin& origin, const TrainPosition& position,
                       int64_t epoch_samples, int64_t world, int64_t batch_size);

// Loads only the model's weights (for prediction). Throws CheckpointError like LoadCheckpoint.
void LoadModelWeights(const std::string& path, torch::nn::Module& model);

}  // namespace trainguard
