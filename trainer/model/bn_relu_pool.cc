// The fused block as an autograd function over the device passes (see bn_relu_pool.h).
#include "trainer/model/bn_relu_pool.h"

#ifdef TRAINGUARD_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#endif

#include "trainer/core/cuda_archs.h"
#include "trainer/core/errors.h"
#include "trainer/model/bn_relu_pool_passes.h"

namespace trainguard {
namespace {

namespace passes = bn_relu_pool;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::pair<torch::Tensor, torch::Tensor> ChannelSums(const torch::Tensor& y) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (y.is_cuda()) return passes::ChannelSumsCuda(y);
#endif
  return passes::ChannelSumsCpu(y);
}

void PoolForward(const torch::Tensor& y, const torch::Tensor& scale, const torch::Tensor& shift, torch::Tensor& out,
                 torch::Tensor& code) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (y.is_cuda()) return passes::PoolForwardCuda(y, scale, shift, out, code);
#endif
  passes::PoolForwardCpu(y, scale, shift, out, code);
}

std::pair<torch::Tensor, torch::Tensor> GradSums(const torch::Tensor& y, const torch::Tensor& g,
                                                 const torch::Tensor& out, const torch::Tensor& code) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (y.is_cuda()) return passes::GradSumsCuda(y, g, out, code);
#endif
  return passes::GradSumsCpu(y, g, out, code);
}

torch::Tensor InputGrad(const torch::Tensor& y, const torch::Tensor& g, const torch::Tensor& out,
                        const torch::Tensor& code, const torch::Tensor& a, const torch::Tensor& b,
                        const torch::Tensor& d) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (y.is_cuda()) return passes::InputGradCuda(y, g, out, code, a, b, d);
#endif
  return passes::InputGradCpu(y, g, out, code, a, b, d);
}

// Inputs: y, the convolution bias, gamma, beta (differentiable); the running statistics are updated
// in place.
struct BnReluPoolFunction : public torch::autograd::Function<BnReluPoolFunction> {
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor y, torch::Tensor conv_bias, torch::Tensor gamma,
                               torch::Tensor beta, torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps) {
    y = y.contiguous(torch::MemoryFormat::ChannelsLast);
    const int64_t count = y.size(0) * y.size(2) * y.size(3);
    const auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(y.device());
    auto [sum, squares] = ChannelSums(y);
    const auto mean = sum / count;
    const auto var = (squares / count - mean * mean).clamp_min(0);
    const auto invstd = (var + eps).rsqrt().to(f32);
    const auto mean32 = mean.to(f32);
    if (running_mean.defined()) {
      // The statistics of y + conv_bias: the bias shifts the mean, not the variance.
      const auto biased_mean = conv_bias.defined() ? mean32 + conv_bias.to(f32) : mean32;
      running_mean.mul_(1 - momentum).add_(biased_mean.to(running_mean.dtype()), momentum);
      const double unbias = count > 1 ? static_cast<double>(count) / static_cast<double>(count - 1) : 1.0;
      running_var.mul_(1 - momentum).add_((var * unbias).to(running_var.dtype()), momentum);
    }
    const auto scale = gamma.to(f32) * invstd;
    const auto shift = beta.to(f32) - mean32 * scale;
    auto out = torch::empty({y.size(0), y.size(1), y.size(2) / 2, y.size(3) / 2},
                            y.options().memory_format(torch::MemoryFormat::ChannelsLast));
    auto code = torch::empty_like(out, out.options().dtype(torch::kUInt8));
    PoolForward(y, scale, shift, out, code);
    ctx->save_for_backward({y, out, code, gamma, mean32, invstd});
    ctx->saved_data["has_conv_bias"] = conv_bias.defined();
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &y = saved[0], &out = saved[1], &code = saved[2], &gamma = saved[3], &mean = saved[4],
               &invstd = saved[5];
    const auto g = grads[0].to(y.scalar_type()).contiguous(torch::MemoryFormat::ChannelsLast);
    const double count = static_cast<double>(y.size(0) * y.size(2) * y.size(3));
    auto [sum_dz, sum_dz_y] = GradSums(y, g, out, code);
    // With xhat = (y - mean) * invstd: sum(dz * xhat) = invstd * (sum(dz * y) - mean * sum(dz)).
    const auto sum_dz32 = sum_dz.to(torch::kFloat32);
    const auto sum_dz_xhat =
        (invstd.to(torch::kFloat64) * (sum_dz_y - mean.to(torch::kFloat64) * sum_dz)).to(torch::kFloat32);
    // dy = k * (dz - sum(dz) / M - xhat * sum(dz * xhat) / M), k = gamma * invstd, as a*dz + b*y + d.
    const auto k = gamma.to(torch::kFloat32) * invstd;
    const auto b = -k * invstd * sum_dz_xhat / count;
    const auto d = -k * sum_dz32 / count - b * mean;
    const auto dy = InputGrad(y, g, out, code, k, b, d);
    // The bias's gradient, sum(dy), is zero: BatchNorm's gradient sums to zero over every channel.
    const auto conv_bias_grad = ctx->saved_data["has_conv_bias"].toBool() ? torch::zeros_like(gamma) : torch::Tensor();
    return {dy, conv_bias_grad, sum_dz_xhat.to(gamma.dtype()), sum_dz32.to(gamma.dtype()), {}, {}, {}, {}};
  }
};

}  // namespace

std::string FusedKernelsMissingFor(torch::Device device) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (!device.is_cuda()) return "";
  const auto* gpu = at::cuda::getDeviceProperties(device.index());
  if (ArchListRuns(TRAINGUARD_CUDA_ARCHS, gpu->major, gpu->minor)) return "";
  return std::string("the fused kernels are built for compute capability ") + TRAINGUARD_CUDA_ARCHS + " and " +
         gpu->name + " (" + device.str() + ") is " + std::to_string(gpu->major) + "." + std::to_string(gpu->minor) +
         ": use --fused-blocks off, or rebuild with TORCH_CUDA_ARCH_LIST=\"" + std::to_string(gpu->major) + "." +
         std::to_string(gpu->minor) + "\"";
#else
  (void)device;
  return "";
#endif
}

bool BnReluPoolSupported(torch::Device device) {
#ifdef TRAINGUARD_WITH_CUDA_KERNELS
  if (device.is_cuda()) return true;
#endif
  return device.is_cpu();
}

torch::Tensor BnReluPool(const torch::Tensor& y, const torch::Tensor& conv_bias, torch::nn::BatchNorm2dImpl& bn) {
  if (!BnReluPoolSupported(y.device())) {
    throw ConfigError("the fused BatchNorm-ReLU-pool block does not run on " + y.device().str() +
                      " in this build (built without its CUDA kernels)");
  }
  if (y.dim() != 4 || y.size(2) % 2 != 0 || y.size(3) % 2 != 0) {
    throw ConfigError("the fused BatchNorm-ReLU-pool block needs [N, C, H, W] with even H and W, got " +
                      c10::str(y.sizes()));
  }
  const auto& options = bn.options;
  if (!options.affine()) throw ConfigError("the fused BatchNorm-ReLU-pool block needs an affine BatchNorm");
  double momentum = options.momentum().value_or(0.0);
  if (options.track_running_stats()) {
    bn.num_batches_tracked.add_(1);
    if (!options.momentum()) momentum = 1.0 / bn.num_batches_tracked.item<double>();  // cumulative average
  }
  const torch::Tensor running_mean = options.track_running_stats() ? bn.running_mean : torch::Tensor();
  const torch::Tensor running_var = options.track_running_stats() ? bn.running_var : torch::Tensor();
  return BnReluPoolFunction::apply(y, conv_bias, bn.weight, bn.bias, running_mean, running_var, momentum,
                                   options.eps());
}

}  // namespace trainguard
