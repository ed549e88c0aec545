// The fused block's passes on the CPU (see bn_relu_pool_passes.h): plain loops over channels-last
// rows, parallel over fixed chunks of rows. They are the reference that runs the fused block's
// algorithm and its autograd function in CI, where no GPU is: measured 2-3x slower than ATen's
// BatchNorm, ReLU and max-pool on the development CPU (ATen's kernels are vectorised for AVX2 and
// AVX-512 chosen at run time; these are compiled for the baseline x86-64), so training on the CPU
// does not use them unless asked (--fused-blocks on).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "trainer/model/bn_relu_pool_passes.h"

namespace trainguard::bn_relu_pool {
namespace {

constexpr int64_t kChunkRows = 512;  // rows per partial sum: fixed, so sums are reproducible

// Per-chunk partial sums of two quantities per channel, added in chunk order at the end.
// `fill(chunk_begin, chunk_end, first, second)` adds the rows [begin, end) into the two arrays.
template <typename Fill>
std::pair<torch::Tensor, torch::Tensor> ChunkedSums(int64_t rows, int64_t channels, const Fill& fill) {
  const int64_t chunks = std::max<int64_t>(1, (rows + kChunkRows - 1) / kChunkRows);
  std::vector<double> partial(static_cast<size_t>(2 * chunks * channels), 0.0);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      double* first = partial.data() + 2 * chunk * channels;
      fill(chunk * kChunkRows, std::min(rows, (chunk + 1) * kChunkRows), first, first + channels);
    }
  });
  auto first = torch::zeros({channels}, torch::kFloat64), second = torch::zeros({channels}, torch::kFloat64);
  double* f = first.data_ptr<double>();
  double* s = second.data_ptr<double>();
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    const double* part = partial.data() + 2 * chunk * channels;
    for (int64_t c = 0; c < channels; ++c) {
      f[c] += part[c];
      s[c] += part[channels + c];
    }
  }
  return {first, second};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> ChannelSumsCpu(const torch::Tensor& y) {
  const Geometry g(y);
  std::pair<torch::Tensor, torch::Tensor> sums;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "ChannelSumsCpu", [&] {
    const scalar_t* data = y.const_data_ptr<scalar_t>();
    sums = ChunkedSums(g.n * g.h * g.w, g.c, [&](int64_t begin, int64_t end, double* sum, double* squares) {
      // fp32 within a chunk (at most kChunkRows terms), fp64 across chunks.
      std::vector<float> s(static_cast<size_t>(g.c), 0.0f), q(static_cast<size_t>(g.c), 0.0f);
      for (int64_t r = begin; r < end; ++r) {
        const scalar_t* row = data + r * g.c;
        for (int64_t c = 0; c < g.c; ++c) {
          const float v = static_cast<float>(row[c]);
          s[c] += v;
          q[c] += v * v;
        }
      }
      for (int64_t c = 0; c < g.c; ++c) {
        sum[c] = s[c];
        squares[c] = q[c];
      }
    });
  });
  return sums;
}

void PoolForwardCpu(const torch::Tensor& y, const torch::Tensor& scale, const torch::Tensor& shift, torch::Tensor& out,
                    torch::Tensor& code) {
  const Geometry g(y);
  const float* __restrict__ sc = scale.const_data_ptr<float>();
  const float* __restrict__ sh = shift.const_data_ptr<float>();
  uint8_t* codes = code.mutable_data_ptr<uint8_t>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "PoolForwardCpu", [&] {
    const scalar_t* data = y.const_data_ptr<scalar_t>();
    scalar_t* pooled = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.pooled_rows(), kChunkRows, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* __restrict__ r0 = data + g.Row(p, 0) * g.c;
        const scalar_t* __restrict__ r1 = data + g.Row(p, 1) * g.c;
        const scalar_t* __restrict__ r2 = data + g.Row(p, 2) * g.c;
        const scalar_t* __restrict__ r3 = data + g.Row(p, 3) * g.c;
        scalar_t* __restrict__ o = pooled + p * g.c;
        uint8_t* __restrict__ at = codes + p * g.c;
        for (int64_t c = 0; c < g.c; ++c) {
          const float z0 = sc[c] * static_cast<float>(r0[c]) + sh[c];
          const float z1 = sc[c] * static_cast<float>(r1[c]) + sh[c];
          const float z2 = sc[c] * static_cast<float>(r2[c]) + sh[c];
          const float z3 = sc[c] * static_cast<float>(r3[c]) + sh[c];
          float best = z0;
          int32_t k = 0;
          k = Wins(z1, best) ? 1 : k;
          best = Wins(z1, best) ? z1 : best;
          k = Wins(z2, best) ? 2 : k;
          best = Wins(z2, best) ? z2 : best;
          k = Wins(z3, best) ? 3 : k;
          best = Wins(z3, best) ? z3 : best;
          o[c] = static_cast<scalar_t>(Relu(best));
          at[c] = static_cast<uint8_t>(k);
        }
      }
    });
  });
}

std::pair<torch::Tensor, torch::Tensor> GradSumsCpu(const torch::Tensor& y, const torch::Tensor& grad,
                                                    const torch::Tensor& out, const torch::Tensor& code) {
  const Geometry g(y);
  const uint8_t* codes = code.const_data_ptr<uint8_t>();
  std::pair<torch::Tensor, torch::Tensor> sums;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "GradSumsCpu", [&] {
    const scalar_t* data = y.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* pooled = out.const_data_ptr<scalar_t>();
    sums = ChunkedSums(g.pooled_rows(), g.c, [&](int64_t begin, int64_t end, double* sum, double* weighted) {
      std::vector<float> s(static_cast<size_t>(g.c), 0.0f), w(static_cast<size_t>(g.c), 0.0f);
      for (int64_t p = begin; p < end; ++p) {
        const int64_t base = p * g.c;
        const scalar_t* rows[4];
        for (int k = 0; k < 4; ++k) rows[k] = data + g.Row(p, k) * g.c;
        for (int64_t c = 0; c < g.c; ++c) {
          const uint8_t at = codes[base + c];
          const float winner = static_cast<float>(at == 0   ? rows[0][c]
                                                  : at == 1 ? rows[1][c]
                                                  : at == 2 ? rows[2][c]
                                                            : rows[3][c]);
          const float dz = static_cast<float>(pooled[base + c]) > 0 ? static_cast<float>(gp[base + c]) : 0.0f;
          s[c] += dz;
          w[c] += dz * winner;
        }
      }
      for (int64_t c = 0; c < g.c; ++c) {
        sum[c] = s[c];
        weighted[c] = w[c];
      }
    });
  });
  return sums;
}

torch::Tensor InputGradCpu(const torch::Tensor& y, const torch::Tensor& grad, const torch::Tensor& out,
                           const torch::Tensor& code, const torch::Tensor& a, const torch::Tensor& b,
                           const torch::Tensor& d) {
  const Geometry g(y);
  auto dy = torch::empty_like(y, torch::MemoryFormat::ChannelsLast);
  const uint8_t* codes = code.const_data_ptr<uint8_t>();
  const float* __restrict__ ca = a.const_data_ptr<float>();
  const float* __restrict__ cb = b.const_data_ptr<float>();
  const float* __restrict__ cd = d.const_data_ptr<float>();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, y.scalar_type(), "InputGradCpu", [&] {
    const scalar_t* data = y.const_data_ptr<scalar_t>();
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* pooled = out.const_data_ptr<scalar_t>();
    scalar_t* result = dy.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, g.pooled_rows(), kChunkRows, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const scalar_t* __restrict__ gradient = gp + p * g.c;
        const scalar_t* __restrict__ o = pooled + p * g.c;
        const uint8_t* __restrict__ at = codes + p * g.c;
        for (int k = 0; k < 4; ++k) {
          const int64_t row = g.Row(p, k) * g.c;
          const scalar_t* __restrict__ in = data + row;
          scalar_t* __restrict__ res = result + row;
          for (int64_t c = 0; c < g.c; ++c) {
            const float dz = (at[c] == k && static_cast<float>(o[c]) > 0.0f) ? static_cast<float>(gradient[c]) : 0.0f;
            res[c] = static_cast<scalar_t>(ca[c] * dz + cb[c] * static_cast<float>(in[c]) + cd[c]);
          }
        }
      }
    });
  });
  return dy;
}

}  // namespace trainguard::bn_relu_pool
