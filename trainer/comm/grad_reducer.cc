// Bucketed, overlapped gradient all-reduce (see grad_reducer.h).
#include "trainer/comm/grad_reducer.h"

#include <algorithm>

#include "trainer/core/buckets.h"

namespace trainguard {

GradReducer::GradReducer(std::vector<torch::Tensor> params, DataPlane& plane, int64_t cap_bytes)
    : params_(std::move(params)), slots_(params_.size()), plane_(plane) {
  // Gradients of a feed-forward network arrive roughly last layer first.
  std::vector<size_t> ready_order;
  std::vector<int64_t> sizes;
  for (size_t i = params_.size(); i-- > 0;) {
    ready_order.push_back(i);
    sizes.push_back(params_[i].numel() * static_cast<int64_t>(params_[i].element_size()));
  }
  for (const auto& members : AssignBuckets(sizes, cap_bytes)) {
    Bucket b;
    int64_t offset = 0;
    for (size_t k : members) {
      const size_t p = ready_order[k];
      slots_[p] = {buckets_.size(), offset};
      b.params.push_back(p);
      offset += params_[p].numel();
    }
    b.buffer = torch::zeros({offset}, params_[b.params.front()].options());
    b.arrived.assign(b.params.size(), false);
    buckets_.push_back(std::move(b));
  }
  for (size_t p = 0; p < params_.size(); ++p) {
    params_[p].register_hook([this, p](torch::Tensor grad) { OnGradient(p, grad); });
  }
}

torch::Tensor GradReducer::Region(size_t p) {
  const torch::Tensor& param = params_[p];
  return buckets_[slots_[p].bucket]
      .buffer.narrow(0, slots_[p].offset, param.numel())
      .as_strided(param.sizes(), param.strides());  // parameters are dense: a permutation of the region
}

void GradReducer::OnGradient(size_t p, const torch::Tensor& grad) {
  Bucket& b = buckets_[slots_[p].bucket];
  auto region = Region(p);
  const auto entry = static_cast<size_t>(std::find(b.params.begin(), b.params.end(), p) - b.params.begin());
  if (b.arrived[entry]) {  // a parameter used twice in the graph gets two gradients
    region.add_(grad);
    return;
  }
  region.copy_(grad);
  b.arrived[entry] = true;
  ++b.ready;
  LaunchReadyBuckets();
}

void GradReducer::LaunchReadyBuckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].ready == buckets_[next_launch_].params.size()) {
    Bucket& b = buckets_[next_launch_++];
    b.pending = plane_.StartSum(b.buffer);
  }
}

void GradReducer::Finish() {
  // Parameters that got no gradient this step contribute zeros, so every rank still sends
  // every bucket in the same order.
  for (size_t i = next_launch_; i < buckets_.size(); ++i) {
    Bucket& b = buckets_[i];
    for (size_t e = 0; e < b.params.size(); ++e) {
      if (b.arrived[e]) continue;
      Region(b.params[e]).zero_();
      b.arrived[e] = true;
      ++b.ready;
    }
  }
  LaunchReadyBuckets();
  for (Bucket& b : buckets_) {
    b.pending->Wait();
    b.pending.reset();
    for (size_t p : b.params) {
      torch::Tensor& grad = params_[p].mutable_grad();
      auto summed = Region(p);
      if (grad.defined()) {
        grad.copy_(summed);
      } else {
        grad = summed.clone();
      }
    }
    b.ready = 0;
    b.arrived.assign(b.params.size(), false);
  }
  next_launch_ = 0;
}

}  // namespace trainguard
