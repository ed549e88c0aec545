// The fused BatchNorm-ReLU-pool block against the modules it replaces: values, gradients,
// running statistics, ties, bf16, reproducibility across thread counts, and bad shapes.
#include "trainer/model/bn_relu_pool.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <limits>

#include "trainer/core/errors.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {
namespace {

namespace F = torch::nn::functional;

struct Result {
  torch::Tensor out, dy, dbias, dgamma, dbeta, running_mean, running_var, batches;
};

// Forward and backward of one block on y (a convolution's output without its bias, which is
// drawn here) with upstream gradient `up`, fused or through the modules, on `device`; the
// results come back to the CPU.
Result RunBlock(const torch::Tensor& y0, const torch::Tensor& up, bool fused, int64_t channels,
                torch::Device device = torch::kCPU) {
  torch::manual_seed(3);
  torch::nn::BatchNorm2d bn(channels);
  {
    torch::NoGradGuard no_grad;
    bn->weight.copy_(torch::randn({channels}));  // some negative: the window's winner is not y's max
    bn->bias.copy_(torch::randn({channels}));
    bn->running_mean.copy_(torch::randn({channels}));
    bn->running_var.copy_(torch::rand({channels}) + 0.5);
  }
  bn->to(device);
  bn->train();
  auto bias = torch::randn({channels}).to(device).requires_grad_(true);
  auto y = y0.detach().to(device).requires_grad_(true);
  auto out = fused ? BnReluPool(y, bias, *bn)
                   : F::max_pool2d(torch::relu(bn->forward(y + bias.view({1, channels, 1, 1}).to(y.dtype()))),
                                   F::MaxPool2dFuncOptions(2));
  out.backward(up.to(device));
  return {out.detach().cpu(),    y.grad().cpu(),         bias.grad().cpu(),     bn->weight.grad().cpu(),
          bn->bias.grad().cpu(), bn->running_mean.cpu(), bn->running_var.cpu(), bn->num_batches_tracked.cpu()};
}

void ExpectSame(const Result& fused, const Result& modules, double rtol, double atol) {
  auto close = [&](const torch::Tensor& a, const torch::Tensor& b, const char* what) {
    EXPECT_TRUE(torch::allclose(a.to(torch::kFloat32), b.to(torch::kFloat32), rtol, atol))
        << what << ": max difference " << (a.to(torch::kFloat32) - b.to(torch::kFloat32)).abs().max().item<double>();
  };
  close(fused.out, modules.out, "output");
  EXPECT_TRUE(torch::equal(fused.dbias, torch::zeros_like(fused.dbias))) << "the fused bias gradient is zero";
  close(fused.dbias, modules.dbias, "convolution bias gradient (rounding noise through the modules)");
  close(fused.dy, modules.dy, "input gradient");
  close(fused.dgamma, modules.dgamma, "weight gradient");
  close(fused.dbeta, modules.dbeta, "bias gradient");
  close(fused.running_mean, modules.running_mean, "running mean");
  close(fused.running_var, modules.running_var, "running variance");
  EXPECT_TRUE(torch::equal(fused.batches, modules.batches));
}

TEST(BnReluPool, MatchesTheModulesInFp32) {
  torch::manual_seed(0);
  const auto y = torch::randn({4, 6, 8, 10}) * 3 + 1;
  const auto up = torch::randn({4, 6, 4, 5});
  const Result fused = RunBlock(y, up, true, 6), modules = RunBlock(y, up, false, 6);
  ExpectSame(fused, modules, 1e-4, 1e-5);
  EXPECT_TRUE(fused.out.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_GT(fused.dy.abs().max().item<double>(), 1e-3);  // the gradient is not trivially zero
}

// A NaN in the input: the modules make its channel NaN (its batch statistics are NaN) and keep
// the others finite; the fused block must do the same, not turn the NaN into a ReLU's 0.
void ExpectNanPassesThrough(torch::Device device) {
  torch::manual_seed(4);
  auto y = torch::randn({2, 4, 6, 6});
  y[1][2][3][3] = std::numeric_limits<float>::quiet_NaN();
  const auto up = torch::randn({2, 4, 3, 3});
  const Result fused = RunBlock(y, up, true, 4, device), modules = RunBlock(y, up, false, 4, device);
  EXPECT_TRUE(torch::equal(fused.out.isnan(), modules.out.isnan()));
  EXPECT_TRUE(fused.out.select(1, 2).isnan().all().item<bool>()) << "the NaN's channel";
  EXPECT_FALSE(fused.out.select(1, 0).isnan().any().item<bool>()) << "another channel";
  EXPECT_TRUE(torch::allclose(fused.out.select(1, 0), modules.out.select(1, 0), 1e-4, 1e-5));
}

TEST(BnReluPool, ANanPassesThroughAsThroughTheModules) { ExpectNanPassesThrough(torch::kCPU); }

TEST(BnReluPool, TiesGoToTheFirstPositionOfTheWindowAsInAten) {
  torch::manual_seed(1);
  // Values from {-1, 0, 1, 2}: most windows hold equal values.
  const auto y = torch::randint(-1, 3, {3, 5, 6, 6}).to(torch::kFloat32).contiguous(torch::MemoryFormat::ChannelsLast);
  const auto up = torch::randn({3, 5, 3, 3});
  ExpectSame(RunBlock(y, up, true, 5), RunBlock(y, up, false, 5), 1e-4, 1e-5);
}

// Relative distance of a's input gradient from b's.
double GradientError(const Result& a, const Result& b) {
  return ((a.dy.to(torch::kFloat32) - b.dy.to(torch::kFloat32)).norm() / b.dy.to(torch::kFloat32).norm())
      .item<double>();
}

// In bf16 both sides round, differently: the modules round y + bias and BatchNorm's output before
// the max-pool compares them (creating ties), the fused block compares unrounded values. So each
// is held to the fp32 result of the modules, and the fused block must be no further from it.
TEST(BnReluPool, Bf16IsAsCloseToFp32AsTheModulesInBf16) {
  torch::manual_seed(2);
  const auto y = (torch::randn({4, 8, 8, 8}) * 2).to(torch::kBFloat16);
  const auto up = torch::randn({4, 8, 4, 4}).to(torch::kBFloat16);
  const Result fused = RunBlock(y, up, true, 8), modules = RunBlock(y, up, false, 8);
  const Result truth = RunBlock(y.to(torch::kFloat32), up.to(torch::kFloat32), false, 8);
  EXPECT_EQ(fused.out.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(fused.dy.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::allclose(fused.out.to(torch::kFloat32), truth.out, 2e-2, 2e-2));
  EXPECT_LE(GradientError(fused, truth), GradientError(modules, truth) + 1e-3)
      << "fused " << GradientError(fused, truth) << ", modules " << GradientError(modules, truth);
  EXPECT_LT(GradientError(fused, truth), 3e-2);
  EXPECT_TRUE(torch::allclose(fused.dgamma, truth.dgamma, 3e-2, 3e-2));
  EXPECT_TRUE(torch::allclose(fused.running_var, truth.running_var, 1e-2, 1e-3));
}

TEST(BnReluPool, SameBitsWithOneThreadOrTwo) {
  torch::manual_seed(4);
  const auto y = torch::randn({8, 16, 32, 32});
  const auto up = torch::randn({8, 16, 16, 16});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const Result one = RunBlock(y, up, true, 16);
  at::set_num_threads(2);
  const Result two = RunBlock(y, up, true, 16);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.out, two.out));
  EXPECT_TRUE(torch::equal(one.dy, two.dy));
  EXPECT_TRUE(torch::equal(one.dgamma, two.dgamma));
  EXPECT_TRUE(torch::equal(one.running_var, two.running_var));
}

TEST(BnReluPool, OddSizesAreRefusedWithTheShape) {
  torch::nn::BatchNorm2d bn(3);
  try {
    BnReluPool(torch::randn({2, 3, 5, 4}), torch::Tensor(), *bn);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("even H and W"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3, 5, 4]"), std::string::npos) << e.what();
  }
}

TEST(BnReluPool, Hw3NetTrainsTheSameFusedOrNot) {
  Hw3Options options{3, 32, 0.25, 11};
  torch::manual_seed(5);
  Hw3Net plain(options);
  options.fused_blocks = true;
  torch::manual_seed(5);
  Hw3Net fused(options);
  const auto x = torch::randn({6, 3, 32, 32});
  for (Hw3Net* net : {&plain, &fused}) {
    (*net)->train();
    (*net)->forward(x).logsumexp(1).sum().backward();
  }
  const auto a = plain->named_parameters(), b = fused->named_parameters();
  EXPECT_EQ(a.keys(), b.keys());
  for (const auto& item : a) {
    const auto& ga = item.value().grad();
    const auto& gb = b[item.key()].grad();
    // A convolution bias feeds BatchNorm, which cancels it: its gradient is rounding noise.
    const bool cancelled =
        item.key().rfind("features.", 0) == 0 && item.value().dim() == 1 && std::stoi(item.key().substr(9)) % 4 == 0;
    if (cancelled) {
      EXPECT_LT(gb.abs().max().item<double>(), 1e-4) << item.key();
      continue;
    }
    EXPECT_TRUE(torch::allclose(ga, gb, 1e-3, 1e-5))
        << item.key() << ": max difference " << (ga - gb).abs().max().item<double>();
  }
  for (const auto& name : {"features.1.running_mean", "features.17.running_var"}) {
    EXPECT_TRUE(torch::allclose(plain->named_buffers()[name], fused->named_buffers()[name], 1e-4, 1e-6)) << name;
  }
  // Evaluation runs the modules in both, on running statistics equal up to rounding.
  plain->eval();
  fused->eval();
  EXPECT_TRUE(torch::allclose(plain->forward(x), fused->forward(x), 1e-4, 1e-5));
}

// The same checks on CUDA (label gpu: tests/unit/CMakeLists.txt); skipped without a visible GPU.
class BnReluPoolGpu : public testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device is visible";
    if (!BnReluPoolSupported(torch::kCUDA)) GTEST_SKIP() << "built without the fused CUDA kernels";
  }
};

TEST_F(BnReluPoolGpu, MatchesTheModulesAndTheCpuInFp32) {
  torch::manual_seed(0);
  const auto y = torch::randn({4, 6, 8, 10}) * 3 + 1;
  const auto up = torch::randn({4, 6, 4, 5});
  const Result cuda = RunBlock(y, up, true, 6, torch::kCUDA);
  ExpectSame(cuda, RunBlock(y, up, false, 6, torch::kCUDA), 1e-4, 1e-5);
  ExpectSame(cuda, RunBlock(y, up, true, 6), 1e-5, 1e-6);
}

TEST_F(BnReluPoolGpu, ANanPassesThroughAsThroughTheModules) { ExpectNanPassesThrough(torch::kCUDA); }

TEST_F(BnReluPoolGpu, TiesGoToTheFirstPositionOfTheWindow) {
  torch::manual_seed(1);
  const auto y = torch::randint(-1, 3, {3, 5, 6, 6}).to(torch::kFloat32);
  const auto up = torch::randn({3, 5, 3, 3});
  ExpectSame(RunBlock(y, up, true, 5, torch::kCUDA), RunBlock(y, up, false, 5, torch::kCUDA), 1e-4, 1e-5);
}

// The first HW3 block at batch 64 and 128x128 (1 M rows of 64 channels): the full grid, and
// channel counts that are not a multiple of 32.
TEST_F(BnReluPoolGpu, MatchesTheModulesAtHw3SizesInFp32AndBf16) {
  for (int64_t channels : {64, 40}) {
    torch::manual_seed(2);
    const auto y = torch::randn({64, channels, 128, 128}) * 2;
    const auto up = torch::randn({64, channels, 64, 64});
    ExpectSame(RunBlock(y, up, true, channels, torch::kCUDA), RunBlock(y, up, false, channels, torch::kCUDA), 1e-3,
               1e-4);
    const auto y16 = y.to(torch::kBFloat16), up16 = up.to(torch::kBFloat16);
    const Result fused = RunBlock(y16, up16, true, channels, torch::kCUDA);
    const Result modules = RunBlock(y16, up16, false, channels, torch::kCUDA);
    const Result truth = RunBlock(y16.to(torch::kFloat32), up16.to(torch::kFloat32), false, channels, torch::kCUDA);
    EXPECT_TRUE(torch::allclose(fused.out.to(torch::kFloat32), truth.out, 2e-2, 2e-2));
    EXPECT_LE(GradientError(fused, truth), GradientError(modules, truth) + 1e-3) << channels << " channels";
    EXPECT_TRUE(torch::allclose(fused.running_var, truth.running_var, 1e-2, 1e-3));
  }
}

TEST_F(BnReluPoolGpu, SameBitsEveryRun) {
  torch::manual_seed(4);
  const auto y = torch::randn({16, 64, 64, 64});
  const auto up = torch::randn({16, 64, 32, 32});
  const Result first = RunBlock(y, up, true, 64, torch::kCUDA), second = RunBlock(y, up, true, 64, torch::kCUDA);
  EXPECT_TRUE(torch::equal(first.out, second.out));
  EXPECT_TRUE(torch::equal(first.dy, second.dy));
  EXPECT_TRUE(torch::equal(first.dgamma, second.dgamma));
  EXPECT_TRUE(torch::equal(first.running_var, second.running_var));
}

}  // namespace
}  // namespace trainguard
