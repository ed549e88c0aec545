// The fused block's passes on CUDA (see bn_relu_pool_passes.h).
// - Thread layout: threadIdx.x walks the channels of a row (consecutive addresses: coalesced), and
//   every thread of a warp works on the same row, so the window's address arithmetic (one 32-bit
//   division) is paid once per warp.
// - Elementwise passes: a block covers 256 / x pooled rows; a thread loops over its row's channels.
// - Sums: blocks of 32 channels x 8 row lanes; each block writes fp64 partials for its rows, and
//   one thread per channel adds the partials in block order. No atomics: the sums are
//   reproducible from run to run.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <limits>

#include "trainer/model/bn_relu_pool_passes.h"

namespace trainguard::bn_relu_pool {
namespace {

constexpr int kChannelsPerBlock = 32;  // sums
constexpr int kRowLanes = 8;           // sums
constexpr int kMaxRowBlocks = 512;     // sums
constexpr int kThreads = 256;          // elementwise passes, and the partials' addition

// Row(p, 0) of Geometry with a 32-bit division (CheckSize keeps pooled rows below 2^31).
__device__ int64_t FirstRow(const Geometry& geo, int64_t p) {
  const auto pooled_width = static_cast<uint32_t>(geo.w / 2);
  return 2 * p + static_cast<int64_t>(static_cast<uint32_t>(p) / pooled_width) * geo.w;
}

void CheckSize(const Geometry& geo) {
  TORCH_CHECK(geo.pooled_rows() < std::numeric_limits<int32_t>::max(),
              "fused BatchNorm-ReLU-pool: too many pooled positions for the CUDA kernels (", geo.pooled_rows(),
              "); use --fused-blocks off");
}

// Adds a block's per-lane sums over its row lanes and writes them to partial[blockIdx.y][c].
__device__ void WritePartials(double first, double second, int64_t c, int64_t channels, double* partial_first,
                              double* partial_second) {
  __shared__ double lanes[2][kRowLanes][kChannelsPerBlock];
  lanes[0][threadIdx.y][threadIdx.x] = first;
  lanes[1][threadIdx.y][threadIdx.x] = second;
  __syncthreads();
  if (threadIdx.y == 0 && c < channels) {
    double a = 0, b = 0;
    for (int lane = 0; lane < kRowLanes; ++lane) {
      a += lanes[0][lane][threadIdx.x];
      b += lanes[1][lane][threadIdx.x];
    }
    partial_first[blockIdx.y * channels + c] = a;
    partial_second[blockIdx.y * channels + c] = b;
  }
}

// out[c] = sum over blocks of partial[block][c], in block order.
__global__ void AddPartials(const double* partial, int blocks, int64_t channels, double* out) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  double total = 0;
  for (int b = 0; b < blocks; ++b) total += partial[b * channels + c];
  out[c] = total;
}

template <typename scalar_t>
__global__ void ChannelSumsKernel(const scalar_t* y, int64_t rows, int64_t channels, double* partial_sum,
                                  double* partial_squares) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(kChannelsPerBlock) + threadIdx.x;
  double sum = 0, squares = 0;
  if (c < channels) {
    for (int64_t r = blockIdx.y * static_cast<int64_t>(kRowLanes) + threadIdx.y; r < rows;
         r += static_cast<int64_t>(gridDim.y) * kRowLanes) {
      const double v = static_cast<float>(y[r * channels + c]);
      sum += v;
      squares += v * v;
    }
  }
  WritePartials(sum, squares, c, channels, partial_sum, partial_squares);
}

template <typename scalar_t>
__global__ void GradSumsKernel(const scalar_t* y, const scalar_t* g, const scalar_t* out, const uint8_t* code,
                               Geometry geo, double* partial_sum, double* partial_weighted) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(kChannelsPerBlock) + threadIdx.x;
  const int64_t rows = geo.pooled_rows();
  double sum = 0, weighted = 0;
  if (c < geo.c) {
    for (int64_t p = blockIdx.y * static_cast<int64_t>(kRowLanes) + threadIdx.y; p < rows;
         p += static_cast<int64_t>(gridDim.y) * kRowLanes) {
      const int64_t i = p * geo.c + c;
      if (!(static_cast<float>(out[i]) > 0)) continue;
      const int k = code[i];
      const double dz = static_cast<float>(g[i]);
      sum += dz;
      weighted += dz * static_cast<float>(y[(FirstRow(geo, p) + (k / 2) * geo.w + k % 2) * geo.c + c]);
    }
  }
  WritePartials(sum, weighted, c, geo.c, partial_sum, partial_weighted);
}

template <typename scalar_t>
__global__ void PoolForwardKernel(const scalar_t* y, const float* scale, const float* shift, Geometry geo,
                                  scalar_t* out, uint8_t* code) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (p >= geo.pooled_rows()) return;
  const int64_t channels = geo.c, row = channels, line = geo.w * channels;
  const scalar_t* window = y + FirstRow(geo, p) * channels;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    const float sc = scale[c], sh = shift[c];
    const float z[4] = {sc * static_cast<float>(window[c]) + sh, sc * static_cast<float>(window[row + c]) + sh,
                        sc * static_cast<float>(window[line + c]) + sh,
                        sc * static_cast<float>(window[line + row + c]) + sh};
    float best = z[0];
    uint8_t at = 0;
    for (int k = 1; k < 4; ++k) {
      if (Wins(z[k], best)) {
        best = z[k];
        at = static_cast<uint8_t>(k);
      }
    }
    out[p * channels + c] = static_cast<scalar_t>(Relu(best));
    code[p * channels + c] = at;
  }
}

template <typename scalar_t>
__global__ void InputGradKernel(const scalar_t* y, const scalar_t* g, const scalar_t* out, const uint8_t* code,
                                const float* a, const float* b, const float* d, Geometry geo, scalar_t* dy) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.y) + threadIdx.y;
  if (p >= geo.pooled_rows()) return;
  const int64_t channels = geo.c;
  const int64_t offsets[4] = {0, channels, geo.w * channels, (geo.w + 1) * channels};
  const int64_t first = FirstRow(geo, p) * channels;
  for (int64_t c = threadIdx.x; c < channels; c += blockDim.x) {
    const int64_t i = p * channels + c;
    const int winner = static_cast<float>(out[i]) > 0 ? code[i] : -1;
    const float grad = static_cast<float>(g[i]), ac = a[c], bc = b[c], dc = d[c];
    for (int k = 0; k < 4; ++k) {
      const int64_t at = first + offsets[k] + c;
      const float dz = k == winner ? grad : 0.0f;
      dy[at] = static_cast<scalar_t>(ac * dz + bc * static_cast<float>(y[at]) + dc);
    }
  }
}

// Runs a sums kernel on its grid and adds the partials: (first, second) fp64 [C].
template <typename Launch>
std::pair<at::Tensor, at::Tensor> Sums(const at::Tensor& y, int64_t rows, int64_t channels, const Launch& launch) {
  const int row_blocks =
      static_cast<int>(std::clamp<int64_t>((rows + kRowLanes * 64 - 1) / (kRowLanes * 64), 1, kMaxRowBlocks));
  const auto f64 = y.options().dtype(at::kDouble).memory_format(at::MemoryFormat::Contiguous);
  auto partial = at::empty({2, row_blocks, channels}, f64);
  auto sums = at::empty({2, channels}, f64);
  const dim3 grid(static_cast<unsigned>((channels + kChannelsPerBlock - 1) / kChannelsPerBlock), row_blocks);
  const dim3 block(kChannelsPerBlock, kRowLanes);
  auto stream = at::cuda::getCurrentCUDAStream();
  launch(grid, block, stream, partial[0].data_ptr<double>(), partial[1].data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const auto add_blocks = static_cast<unsigned>((channels + kThreads - 1) / kThreads);
  for (int which = 0; which < 2; ++which) {
    AddPartials<<<add_blocks, kThreads, 0, stream>>>(partial[which].data_ptr<double>(), row_blocks, channels,
                                                     sums[which].data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {sums[0], sums[1]};
}

// The elementwise passes' launch shape: x threads over a row's channels (a multiple of 32, at
// most 256), 256 / x rows per block.
struct RowLaunch {
  dim3 grid, block;
  explicit RowLaunch(const Geometry& geo) {
    const int64_t x = std::min<int64_t>(kThreads, (geo.c + 31) / 32 * 32);
    const int64_t rows_per_block = kThreads / x;
    block = dim3(static_cast<unsigned>(x), static_cast<unsigned>(rows_per_block));
    grid = dim3(static_cast<unsigned>((geo.pooled_rows() + rows_per_block - 1) / rows_per_block));
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> ChannelSumsCuda(const at::Tensor& y) {
  const Geometry geo(y);
  const int64_t rows = geo.n * geo.h * geo.w;
  std::pair<at::Tensor, at::Tensor> sums;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "ChannelSumsCuda", [&] {
    sums = Sums(y, rows, geo.c, [&](dim3 grid, dim3 block, cudaStream_t stream, double* first, double* second) {
      ChannelSumsKernel<scalar_t><<<grid, block, 0, stream>>>(y.const_data_ptr<scalar_t>(), rows, geo.c, first, second);
    });
  });
  return sums;
}

void PoolForwardCuda(const at::Tensor& y, const at::Tensor& scale, const at::Tensor& shift, at::Tensor& out,
                     at::Tensor& code) {
  const Geometry geo(y);
  CheckSize(geo);
  if (geo.pooled_rows() * geo.c == 0) return;
  const RowLaunch launch(geo);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "PoolForwardCuda", [&] {
    PoolForwardKernel<scalar_t><<<launch.grid, launch.block, 0, at::cuda::getCurrentCUDAStream()>>>(
        y.const_data_ptr<scalar_t>(), scale.const_data_ptr<float>(), shift.const_data_ptr<float>(), geo,
        out.mutable_data_ptr<scalar_t>(), code.mutable_data_ptr<uint8_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

std::pair<at::Tensor, at::Tensor> GradSumsCuda(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out,
                                               const at::Tensor& code) {
  const Geometry geo(y);
  CheckSize(geo);
  std::pair<at::Tensor, at::Tensor> sums;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "GradSumsCuda", [&] {
    sums = Sums(y, geo.pooled_rows(), geo.c,
                [&](dim3 grid, dim3 block, cudaStream_t stream, double* first, double* second) {
                  GradSumsKernel<scalar_t><<<grid, block, 0, stream>>>(
                      y.const_data_ptr<scalar_t>(), g.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
                      code.const_data_ptr<uint8_t>(), geo, first, second);
                });
  });
  return sums;
}

at::Tensor InputGradCuda(const at::Tensor& y, const at::Tensor& g, const at::Tensor& out, const at::Tensor& code,
                         const at::Tensor& a, const at::Tensor& b, const at::Tensor& d) {
  const Geometry geo(y);
  CheckSize(geo);
  auto dy = at::empty_like(y, at::MemoryFormat::ChannelsLast);
  if (geo.pooled_rows() * geo.c == 0) return dy;
  const RowLaunch launch(geo);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "InputGradCuda", [&] {
    InputGradKernel<scalar_t><<<launch.grid, launch.block, 0, at::cuda::getCurrentCUDAStream()>>>(
        y.const_data_ptr<scalar_t>(), g.const_data_ptr<scalar_t>(), out.const_data_ptr<scalar_t>(),
        code.const_data_ptr<uint8_t>(), a.const_data_ptr<float>(), b.const_data_ptr<float>(), d.const_data_ptr<float>(),
        geo, dy.mutable_data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return dy;
}

}  // namespace trainguard::bn_relu_pool
