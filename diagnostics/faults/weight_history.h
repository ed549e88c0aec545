// WeightHistory: what a diagnosis needs to say where the weights of a failed step came from. The
// norm of each parameter at the start of the last step that passed, so that the weights' growth
// in that step's update, or the update that made a parameter NaN, can be named later; and the
// buffers (BatchNorm's running statistics) at the start of the current step, since a training
// forward pass updates them before the step can fail.
// Fed on the training thread (OnModelReady, BeforeStep, AfterStep); the model must outlive it.
// On a GPU the norms and buffers stay on the device until a failure reads them (one multi-tensor
// norm and small copies per step, no synchronisation).
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
  // A step begins: keeps a copy of the buffers of the model given to Ready.
  void StepStarts();
  // Step `global_step` passed and its update is applied to `model`.
  void StepPassed(int64_t global_step, const torch::nn::Module& model);

  // The buffers at the start of the current step, on the CPU, by name; empty before the first
  // step or when the device cannot be read.
  std::map<std::string, torch::Tensor> BuffersAtStart() const;

  int64_t ready_step() const { return ready_step_; }
  int64_t last_good_step() const { return good_step_; }
  // The finite norms at the start of the last good step, by parameter name; empty when no step
  // passed since Ready or the device cannot be read (after a device-side assert).
  std::map<std::string, double> LastGoodNorms() const;

 private:
  static torch::Tensor Norms(const torch::nn::Module& model);

  const torch::nn::Module* model_ = nullptr;
  std::map<std::string, torch::Tensor> start_buffers_;  // on the model's device
  std::vector<std::string> names_;                      // parameter names, in the order of the norms
  torch::Tensor start_norms_;                           // at the start of the next step
  torch::Tensor good_norms_;                            // at the start of the last good step
  int64_t ready_step_ = 0, good_step_ = 0;
};

}  // namespace trainguard
