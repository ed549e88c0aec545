// WeightHistory: what a diagnosis needs to say where the weights of a failed step came from. The
// norm of each parameter at the start of the last step that passed, so that the weights' growth
// in that step's update, or the update that made a parameter NaN, can be named later.
// Fed on the training thread (OnModelReady, AfterStep). On a GPU the norms stay on the device
// until a failure reads them (one multi-tensor kernel per step, no synchronisation).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

namespace trainguard {

class WeightHistory {
 public:
  // The model is built or loaded with `global_step` steps done: no step has passed since.
  void Ready(int64_t global_step, const torch::nn::Module& model);
  // Step `global_step` passed and its update is applied to `model`.
  void StepPassed(int64_t global_step, const torch::nn::Module& model);

  int64_t ready_step() const { return ready_step_; }
  int64_t last_good_step() const { return good_step_; }
  // The finite norms at the start of the last good step, by parameter name; empty when no step
  // passed since Ready or the device cannot be read (after a device-side assert).
  std::map<std::string, double> LastGoodNorms() const;

 private:
  static torch::Tensor Norms(const torch::nn::Module& model);

  std::vector<std::string> names_;  // parameter names, in the order of the norms
  torch::Tensor start_norms_;       // at the start of the next step
  torch::Tensor good_norms_;        // at the start of the last good step
  int64_t ready_step_ = 0, good_step_ = 0;
};

}  // namespace trainguard
