// The HW3 food-11 classifier: five blocks Conv3x3-BatchNorm-ReLU-MaxPool2 with 64-128-256-512-512
// channels, then FC 1024-512-num_classes. `width` scales every channel and hidden size
// (0.25: 16-32-64-128-128, FC 256-128), and input channels and size are free so the same network
// serves 128x128 RGB (HW3) and 32x32 grayscale (padded Fashion-MNIST).
#pragma once

#include <torch/torch.h>

namespace trainguard {

struct Hw3Options {
  int64_t in_channels = 3;
  int64_t image_size = 128;  // square input; must be a positive multiple of 32
  double width = 1.0;        // channel multiplier, > 0
  int64_t num_classes = 11;
  // In training, run each block's BatchNorm, ReLU and max-pool as one fused operation
  // (bn_relu_pool.h). Same parameters, buffers and checkpoint keys either way.
  bool fused_blocks = false;
};

class Hw3NetImpl : public torch::nn::Module {
 public:
  // Throws ConfigError when the options do not describe a valid network.
  explicit Hw3NetImpl(const Hw3Options& options);
  // x: [B, in_channels, image_size, image_size], any memory layout -> logits [B, num_classes].
  // The convolution weights are kept channels-last; see the constructor.
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Sequential features{nullptr};  // per block: Conv2d, BatchNorm2d, ReLU, MaxPool2d
  torch::nn::Sequential classifier{nullptr};

 private:
  bool fused_blocks_;
};
TORCH_MODULE(Hw3Net);

}  // namespace trainguard
