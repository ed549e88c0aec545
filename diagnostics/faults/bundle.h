// Repro bundle: everything needed to re-run a failed step in another process, on any machine.
// A folder with meta.json (what failed, where, the samples and their files and raw labels, the
// model's shape, the configuration) and tensors.pt (the batch as fed to the model, its targets,
// the weights the step started from, the CPU generator state).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "trainer/core/errors.h"

namespace trainguard {

struct BundleMeta {
  std::string kind;   // ErrorKind name: batch_data, device_assert, non_finite, out_of_memory, gpu_fault, ...
  std::string error;  // the error text the rank saw
  int rank = 0, world = 1;
  int64_t epoch = 0, step_in_epoch = 0, global_step = 0;
  std::vector<int64_t> indices;      // dataset index of each row
  std::vector<std::string> sources;  // file of each row
  std::vector<std::string> raw_labels;
  int64_t num_classes = 0, ignore_index = -1, in_channels = 1, image_size = 32;
  double width = 1.0;
  std::string device;                // where the step ran ("cpu", "cuda:0")
  std::string precision = "fp32";    // the forward pass's arithmetic in training: "fp32" or "bf16" (autocast)
  int64_t global_valid_targets = 0;  // the loss's divisor: valid targets over all ranks (0: unknown, use the batch's)
  std::string weights_from;          // "the failing step's own weights" or "host copy after step N"
  bool weights_own = false;  // the weights are the failing step's own (false: an older host copy, after an assert)
  // The weights' history in this process: they were built or loaded when `weights_ready_step`
  // steps were done; `last_good_step` (0: none) is the last step that passed, and
  // `last_good_norms` the L2 norm of each parameter at its start. Its update made the weights
  // the failing step started from.
  int64_t weights_ready_step = 0;
  int64_t last_good_step = 0;
  std::map<std::string, double> last_good_norms;
  std::string config;  // the resolved configuration, config-file syntax
};

struct Bundle {
  BundleMeta meta;
  torch::Tensor images, targets, rng_state;
  std::map<std::string, torch::Tensor> weights;  // parameter and buffer name -> CPU tensor
};

// A CPU copy of every parameter and buffer of `model`, by name.
std::map<std::string, torch::Tensor> HostWeights(const torch::nn::Module& model);

// Writes the bundle into `dir` (created). Throws IoError/c10::Error on failure. Without images
// (an out-of-memory failure: serialising tensors needs the memory that ran out) only meta.json.
void WriteBundle(const std::string& dir, const Bundle& bundle);
// Reads a bundle; throws DataError naming the folder and file when it is incomplete or damaged.
Bundle ReadBundle(const std::string& dir);

}  // namespace trainguard
