// Checkpoints: model (parameters and buffers), optimizer state, position in training, the Torch
// CPU generator state, and where the file came from (the world size that wrote it and when).
// File layout: the line "TRAINGUARD-CHECKPOINT 1\n", the payload size (8 bytes, little-endian),
// its CRC-32 (4 bytes), then the payload (a Torch archive). Written atomically; a file that is
// truncated, corrupted, of another model, or of another run shape (batch size, training samples,
// seed: what decides the epoch's order) is refused with CheckpointError naming it. The world
// size may differ: the position counts the samples of the epoch trained, not steps of one world.
// The payload also records the model's shape (ModelShape), so that `predict --checkpoint FILE`
// needs no model flags. The format version stays 1: the payload is a keyed archive, so an older
// trainguard reads a newer file (ignoring the record), and a file written before the record was
// kept loads as before, the model then described by the flags.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>

#include "trainer/core/config.h"
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

// The model a checkpoint holds and the input it takes: what decides its parameters' shapes and
// what `predict` must feed it. `precision` is how it was trained, kept as information: a resume
// may change it (re-running a bf16 failure in fp32 is a remedy), prediction runs in fp32. Fused
// blocks are not recorded: they change neither the parameters nor the checkpoint.
struct ModelShape {
  std::string dataset;      // the input: "fashion-mnist", "synthetic" or "folder" (--dataset)
  int64_t channels = 0;     // of the input images (1 for Fashion-MNIST and synthetic, 3 for JPEGs)
  int64_t image_size = 0;   // side of the square input (--image-size for a folder)
  int64_t num_classes = 0;  // model outputs (--num-classes, or the dataset's class count)
  double width = 0;         // channel multiplier (--width)
  std::string precision;    // the training forward pass (--precision)
  bool operator==(const ModelShape& o) const {
    return dataset == o.dataset && channels == o.channels && image_size == o.image_size &&
           num_classes == o.num_classes && width == o.width && precision == o.precision;
  }
};

// "width 0.25, 10 classes, 32x32x3 input (folder), trained in fp32".
std::string ModelShapeText(const ModelShape& shape);

// The run that writes or resumes a checkpoint. All but `world` must match for a resume to
// continue the same run; `world` is stored as information. `model`, when known (num_classes >
// 0), is saved with the checkpoint and must match a recorded one on resume, but its precision.
struct RunShape {
  int64_t world = 1;
  int64_t batch_size = 0;  // per rank
  int64_t train_samples = 0;
  int64_t seed = 0;
  ModelShape model = {};
};

// The model shape recorded in the checkpoint `path`, or nullopt for a file written before it was
// recorded. Throws CheckpointError naming the file when it is missing, not a checkpoint, or damaged.
std::optional<ModelShape> ReadModelShape(const std::string& path);

// For `predict`: sets the model settings of `config` (dataset, image size, class count, width,
// precision) to those the checkpoint `path` recorded in `saved`. A setting that was given
// (`given(name)`, name the long flag without dashes, says where: "--width" for the command line,
// "TRAINGUARD_WIDTH" or "the --config file"; "" when it has its default) with another value is a
// contradiction: throws ConfigError naming the setting, where it came from, the file and the
// recorded value, e.g. "--width 0.5 contradicts the checkpoint FILE, trained with width 0.25:
// drop --width".
void TakeModelShape(const ModelShape& saved, const std::string& path,
                    const std::function<std::string(const std::string&)>& given, TrainConfig& config);

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
// `shape` differs from the saved one in anything but the world size (and the model's precision),
// naming the setting that differs.
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
