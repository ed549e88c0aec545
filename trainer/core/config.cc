// Cross-field validation of TrainConfig.
#include "trainer/core/config.h"

#include "trainer/core/errors.h"

namespace trainguard {

void ValidateTrainConfig(const TrainConfig& c) {
  if (c.dataset != "fashion-mnist" && c.dataset != "synthetic") {
    throw ConfigError("--dataset: unknown dataset '" + c.dataset +
                      "'; use fashion-mnist or synthetic");
  }
  if (c.device != "auto" && c.device != "cpu" && c.device != "cuda") {
    throw ConfigError("--device: unknown device '" + c.device + "'; use auto, cpu or cuda");
  }
  if (c.resume && c.checkpoint.empty()) {
    throw ConfigError("--resume needs --checkpoint FILE to resume from");
  }
  if (c.checkpoint_every > 0 && c.checkpoint.empty()) {
    throw ConfigError("--checkpoint-every needs --checkpoint FILE to write to");
  }
  if (c.num_classes != 0 && c.ignore_index >= 0 && c.ignore_index < c.num_classes) {
    throw ConfigError("--ignore-index " + std::to_string(c.ignore_index) +
                      " is a real class of [0, " + std::to_string(c.num_classes) +
                      "); pick a value outside it such as -1");
  }
}

}  // namespace trainguard
