// Adam whose update is one fused ATen call per parameter group (`at::_fused_adam_`, the kernel
// behind Python's `Adam(fused=True)`) instead of about ten tensor operations per parameter.
// On a GPU that is a few multi-tensor kernel launches per step instead of hundreds; on a CPU one
// pass over each parameter instead of several.
//
// Contract: the same algorithm, options and state as torch::optim::Adam (L2 weight decay added
// to the gradient, bias correction by the step count, optional AMSGrad), so results agree with it
// up to floating-point rounding (the fused kernel computes the bias corrections in fp32), and
// save()/load() read and write exactly Adam's format: checkpoints move freely between the two.
// Every parameter of a group must live on one device.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace trainguard {

class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;
  // One update of every parameter that has a gradient. `closure` is not supported (nothing in
  // trainguard re-evaluates the loss inside a step): passing one throws.
  torch::Tensor step(LossClosure closure = nullptr) override;

 private:
  // The step counts as the fused kernel reads them: one fp32 element per parameter of a group, on
  // the group's device, and the host counts they hold. Kept between steps so that the common
  // case (every parameter stepped last time) costs one on-device increment, not a copy.
  struct DeviceSteps {
    torch::Tensor counts;
    std::vector<int64_t> host;
  };
  std::vector<torch::Tensor> StepCounts(size_t group, const std::vector<int64_t>& host, torch::Device device);

  std::vector<DeviceSteps> steps_;
};

}  // namespace trainguard
