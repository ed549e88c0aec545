// The four memory passes of the fused BatchNorm(train) + ReLU + 2x2 max-pool block
// (bn_relu_pool.h), one implementation per device. Each pass reads the convolution output `y`
// once; everything per channel (scale, shift, the gradient's coefficients) is computed between
// passes on [C]-sized tensors with ordinary ATen operations.
//
// Shared contract of every pass:
// - y: [N, C, H, W] channels-last contiguous (memory order N, H, W, C), H and W even; fp32, bf16
//   or fp16. Pooled tensors (out, g, code) are [N, C, H/2, W/2] channels-last contiguous.
// - Per-channel inputs are fp32 [C] on y's device; per-channel sums are returned as fp64 [C].
// - The window of a pooled element is scanned (0,0), (0,1), (1,0), (1,1); the first strictly
//   largest value wins, as in ATen's max-pool. `code` holds its position (0-3).
// - Sums are formed in fixed-size chunks of rows whose partials are added in chunk order: the
//   result does not depend on the thread count or scheduling (a resumed run stays bit-identical).
#pragma once

#include <ATen/ATen.h>

#include <utility>

#ifdef __CUDACC__
#define TG_HOST_DEVICE __host__ __device__
#else
#define TG_HOST_DEVICE
#endif

namespace trainguard::bn_relu_pool {

// Whether z takes a pooling window from `best`, as ATen's max pool decides: a larger value, or a
// NaN (which then stays: nothing is larger than a NaN), so that a NaN passes through as it does
// through the modules instead of becoming a ReLU's 0.
TG_HOST_DEVICE inline bool Wins(float z, float best) { return z > best || z != z; }

// The ReLU of a window's winner; a NaN stays NaN.
TG_HOST_DEVICE inline float Relu(float best) { return best > 0.0f || best != best ? best : 0.0f; }

// Where a pooled element's window lies in y. A row is one position's C channels; pooled row
// p = (image * H/2 + ho) * W/2 + wo covers rows Row(p, 0..3) = (image * H + 2 ho + k / 2) * W +
// 2 wo + k % 2, which simplifies to 2 p + (p / (W/2)) * W + (k / 2) * W + k % 2: one division.
struct Geometry {
  int64_t n, c, h, w;
  explicit Geometry(const at::Tensor& y) : n(y.size(0)), c(y.size(1)), h(y.size(2)), w(y.size(3)) {}
  TG_HOST_DEVICE int64_t pooled_rows() const { return n * (h / 2) * (w / 2); }
  TG_HOST_DEVICE int64_t Row(int64_t p, int k) const { return 2 * p + (p / (w / 2)) * w + (k / 2) * w + k % 2; }
};

// (sum of y, sum of y*y) per channel over N, H, W.
std::pair<at::Tensor, at::Tensor> ChannelSumsCpu(const at::Tensor& y);
// out = relu(max over the window of scale*y + shift) in y's dtype; code = the window position.
void PoolForwardCpu(const at::Tensor& y, const at::Tensor& scale, const at::Tensor& shift, at::Tensor& out,
                    at::Tensor& code);
// With dz = g at the window's winning position where out > 0 (0 elsewhere):
// (sum of dz, sum of dz*y) per channel.
std::pair<at::Tensor, at::Tensor> GradSumsCpu(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out,
                                              const at::Tensor& code);
// dy = a*dz + b*y + d for every element of y (dz as above), in y's dtype.
at::Tensor InputGradCpu(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out, const at::Tensor& code,
                        const at::Tensor& a, const at::Tensor& b, const at::Tensor& d);

#ifdef TRAINGUARD_WITH_CUDA_KERNELS
std::pair<at::Tensor, at::Tensor> ChannelSumsCuda(const at::Tensor& y);
void PoolForwardCuda(const at::Tensor& y, const at::Tensor& scale, const at::Tensor& shift, at::Tensor& out,
                     at::Tensor& code);
std::pair<at::Tensor, at::Tensor> GradSumsCuda(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out,
                                               const at::Tensor& code);
at::Tensor InputGradCuda(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out, const at::Tensor& code,
                         const at::Tensor& a, const at::Tensor& b, const at::Tensor& d);
#endif

}  // namespace trainguard::bn_relu_pool
