// Adam through one fused kernel call (see fused_adam.h).
#include "trainer/fused_adam.h"

#include <ATen/ops/_fused_adam.h>

#include "trainer/core/errors.h"

namespace trainguard {

std::vector<torch::Tensor> FusedAdam::StepCounts(size_t group, const std::vector<int64_t>& host, torch::Device device) {
  if (steps_.size() <= group) steps_.resize(group + 1);
  DeviceSteps& cached = steps_[group];
  bool one_more = cached.counts.defined() && cached.counts.device() == device && cached.host.size() == host.size();
  for (size_t i = 0; one_more && i < host.size(); ++i) one_more = host[i] == cached.host[i] + 1;
  if (one_more) {
    cached.counts.add_(1);
  } else {  // the first step, a new set of parameters with gradients, or a loaded checkpoint
    std::vector<float> values(host.begin(), host.end());
    cached.counts = torch::tensor(values, torch::kFloat32).to(device);
  }
  cached.host = host;
  return cached.counts.unbind(0);
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  if (closure) throw Error("internal: FusedAdam::step takes no closure");
  torch::NoGradGuard no_grad;
  for (size_t g = 0; g < param_groups_.size(); ++g) {
    auto& group = param_groups_[g];
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs;
    std::vector<int64_t> host_steps;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      if (!params.empty() && p.device() != params.front().device()) {
        throw Error("internal: FusedAdam needs every parameter of a group on one device");
      }
      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {  // the same initial state as torch::optim::Adam
        auto fresh = std::make_unique<torch::optim::AdamParamState>();
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (options.amsgrad()) fresh->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*slot);
      state.step(state.step() + 1);
      params.push_back(p);
      grads.push_back(p.grad());
      exp_avgs.push_back(state.exp_avg());
      exp_avg_sqs.push_back(state.exp_avg_sq());
      if (options.amsgrad()) max_exp_avg_sqs.push_back(state.max_exp_avg_sq());
      host_steps.push_back(state.step());
    }
    if (params.empty()) continue;
    const auto counts = StepCounts(g, host_steps, params.front().device());
    const auto [beta1, beta2] = options.betas();
    at::_fused_adam_(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, counts, options.lr(), beta1, beta2,
                     options.weight_decay(), options.eps(), options.amsgrad(), /*maximize=*/false);
  }
  return {};
}

}  // namespace trainguard
