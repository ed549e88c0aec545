// Cross-field validation of TrainConfig.
#include "trainer/core/config.h"

#include "trainer/core/errors.h"

namespace trainguard {

void ValidateTrainConfig(const TrainConfig& c) {
  if (c.dataset != "fashion-mnist" && c.dataset != "synthetic" && c.dataset != "folder") {
    throw ConfigError("--dataset: unknown dataset '" + c.dataset + "'; use fashion-mnist, synthetic or folder");
  }
  if (c.unreadable != "fail" && c.unreadable != "skip") {
    throw ConfigError("--unreadable: unknown policy '" + c.unreadable + "'; use fail or skip");
  }
  if (c.image_size <= 0 || c.image_size % 32 != 0) {
    throw ConfigError("--image-size " + std::to_string(c.image_size) +
                      " must be a positive multiple of 32 "
                      "(the classifier pools five times)");
  }
  if (c.device != "auto" && c.device != "cpu" && c.device != "cuda") {
    throw ConfigError("--device: unknown device '" + c.device + "'; use auto, cpu or cuda");
  }
  if (c.data_plane != "auto" && c.data_plane != "nccl" && c.data_plane != "mpi") {
    throw ConfigError("--data-plane: unknown plane '" + c.data_plane + "'; use auto, nccl or mpi");
  }
  if (c.data_plane == "nccl" && c.device == "cpu") {
    throw ConfigError("--data-plane nccl needs CUDA tensors: drop --device cpu, or use --data-plane mpi");
  }
  auto check_action = [](const char* flag, const std::string& value, bool may_inherit) {
    if (value == "fail" || value == "ignore" || value == "drop" || (may_inherit && value.empty())) return;
    throw ConfigError(std::string(flag) + ": unknown action '" + value + "'; use fail, ignore or drop");
  };
  check_action("--bad-labels", c.bad_labels, false);
  check_action("--negative-labels", c.negative_labels, true);
  check_action("--too-large-labels", c.too_large_labels, true);
  check_action("--unparsable-labels", c.unparsable_labels, true);
  for (const auto& plant : c.plant_labels) {
    if (plant.find('=') == std::string::npos || plant.find('=') == 0) {
      throw ConfigError("--plant-label: '" + plant +
                        "' is not INDEX=LABEL (e.g. 17=11, 3=-1, 5=abc, 8= for unlabelled)");
    }
  }
  if (c.precision != "fp32" && c.precision != "bf16") {
    throw ConfigError("--precision: unknown value '" + c.precision + "'; use fp32 or bf16");
  }
  if (c.fused_blocks != "auto" && c.fused_blocks != "on" && c.fused_blocks != "off") {
    throw ConfigError("--fused-blocks: unknown value '" + c.fused_blocks + "'; use auto, on or off");
  }
  if (c.resume != "no" && c.resume != "yes" && c.resume != "auto") {
    throw ConfigError("--resume: unknown value '" + c.resume +
                      "'; use yes (the default of a bare --resume), auto or no");
  }
  if (c.resume != "no" && c.checkpoint.empty()) {
    throw ConfigError("--resume needs --checkpoint FILE to resume from");
  }
  if (c.checkpoint_every > 0 && c.checkpoint.empty()) {
    throw ConfigError("--checkpoint-every needs --checkpoint FILE to write to");
  }
  if (c.bad_samples != "fail" && c.bad_samples != "quarantine") {
    throw ConfigError("--bad-samples: unknown policy '" + c.bad_samples + "'; use fail or quarantine");
  }
  if (c.bad_samples == "quarantine" && c.checkpoint.empty()) {
    throw ConfigError(
        "--bad-samples quarantine needs --checkpoint FILE: the run goes on from the last checkpoint "
        "after setting samples aside");
  }
  if (c.bad_samples == "quarantine" && !c.diagnose) {
    throw ConfigError(
        "--bad-samples quarantine needs the diagnosis (drop --no-diagnose): it names the samples to "
        "set aside");
  }
  if (c.bad_samples != "quarantine" && (c.quarantine_by_restart || !c.quarantine.empty())) {
    throw ConfigError(std::string(c.quarantine_by_restart ? "--quarantine-by-restart" : "--quarantine") +
                      " applies to --bad-samples quarantine only");
  }
  if (c.num_classes != 0 && c.ignore_index >= 0 && c.ignore_index < c.num_classes) {
    throw ConfigError("--ignore-index " + std::to_string(c.ignore_index) + " is a real class of [0, " +
                      std::to_string(c.num_classes) + "); pick a value outside it such as -1");
  }
}

}  // namespace trainguard
