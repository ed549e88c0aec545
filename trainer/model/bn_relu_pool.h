// One HW3 block after its convolution, fused for training: BatchNorm in training mode (batch
// statistics, running statistics updated), ReLU, 2x2 max-pool with stride 2. The unfused modules
// read and write the full-resolution activation about six times forward and backward and keep
// int64 pooling indices; this keeps only the convolution output, the pooled output and a 1-byte
// window position, and reduces the backward pass at pooled resolution (only a window's winner
// gets a gradient).
//
// The convolution's bias is taken apart from its output: BatchNorm in training mode subtracts the
// batch mean, which cancels a per-channel bias exactly, so adding it to every element would be a
// full pass for nothing. It only moves the running mean.
//
// Contract: with y the convolution output without its bias and `conv_bias` that bias (undefined:
// none), the same values and gradients as bn(y + conv_bias) -> relu -> max_pool2d(2, 2) with `bn`
// in training mode, up to floating-point rounding; when several window values are equal the first
// wins, as in ATen, except that the comparison is made before rounding to y's dtype. `bn`'s
// running mean, running variance and batch counter move exactly as BatchNorm2d's forward moves
// them. The bias's gradient is exactly zero (through the modules it is rounding noise around
// zero). y: [N, C, H, W] with H and W even; fp32, bf16 or fp16; any layout (made channels-last).
// Runs on the CPU, and on CUDA when trainguard was built with its CUDA kernels (otherwise throws
// ConfigError). Evaluation (bn in eval mode) is not fused: use the modules.
#pragma once

#include <torch/torch.h>

namespace trainguard {

torch::Tensor BnReluPool(const torch::Tensor& y, const torch::Tensor& conv_bias, torch::nn::BatchNorm2dImpl& bn);

// Whether BnReluPool runs on `device` in this build.
bool BnReluPoolSupported(torch::Device device);

// Why the fused kernels cannot run on `device` although the build has them: a GPU whose compute
// capability the architectures they were built for (TORCH_CUDA_ARCH_LIST) do not cover. Empty
// when they can run.
std::string FusedKernelsMissingFor(torch::Device device);

}  // namespace trainguard
