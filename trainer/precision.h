// The arithmetic of the forward pass: fp32, or bf16 autocast (what Python's
// torch.autocast(dtype=torch.bfloat16) does: convolutions and matrix products in bf16, softmax and
// the loss in fp32, the weights, gradients and Adam state kept in fp32).
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <string>

namespace trainguard {

// Enables bf16 autocast on `device`'s type while alive when `precision` is "bf16"; does nothing
// for "fp32". Wrap the forward pass and the loss, not backward or the optimizer step.
class AutocastScope {
 public:
  AutocastScope(torch::Device device, const std::string& precision)
      : type_(device.type()), enabled_(precision == "bf16") {
    if (!enabled_) return;
    previous_enabled_ = at::autocast::is_autocast_enabled(type_);
    previous_dtype_ = at::autocast::get_autocast_dtype(type_);
    at::autocast::set_autocast_enabled(type_, true);
    at::autocast::set_autocast_dtype(type_, at::kBFloat16);
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();  // the bf16 copies of the weights
    at::autocast::set_autocast_enabled(type_, previous_enabled_);
    at::autocast::set_autocast_dtype(type_, previous_dtype_);
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

}  // namespace trainguard
