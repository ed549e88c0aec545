// Comparing two trainings of the same model on different devices (a GPU against the CPU).
// Element-wise equality is the wrong question there: Adam divides each gradient element by its
// own running magnitude, so an element whose gradient is rounding noise moves by a whole
// learning rate in a direction the rounding decides, and training amplifies the devices'
// different roundings step by step. Two measures are well posed:
//  - the relative difference of the first step's gradients (same weights, same batch): the
//    devices' rounding alone (about 1e-6 in fp32, about 1e-3 where TF32 is used);
//  - the relative difference of the parameter updates after several steps, which grows with
//    the number of steps but stays far below 1 unless the trainings compute different things.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace trainguard::testing {

// ||a - b|| / ||b - base|| over all tensors together (with no base: ||a - b|| / ||b||). The
// tensors of `a` may live on any device.
inline double RelativeDifference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b,
                                 const std::vector<torch::Tensor>& base = {}) {
  double diff = 0, size = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto reference = base.empty() ? b[i] : b[i] - base[i];
    diff += (a[i].detach().cpu().to(torch::kFloat64) - b[i].to(torch::kFloat64)).pow(2).sum().item<double>();
    size += reference.to(torch::kFloat64).pow(2).sum().item<double>();
  }
  return std::sqrt(diff / size);
}

inline std::vector<torch::Tensor> Gradients(torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.grad().detach().cpu().clone());
  return out;
}

inline std::vector<torch::Tensor> Parameters(torch::nn::Module& model) {
  std::vector<torch::Tensor> out;
  for (const auto& p : model.parameters()) out.push_back(p.detach().cpu().clone());
  return out;
}

}  // namespace trainguard::testing
