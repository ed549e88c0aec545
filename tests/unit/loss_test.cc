// Global-count cross-entropy: equals PyTorch's mean where that is defined, is zero (not NaN)
// for an all-ignored batch, and honours any ignore index.
#include "trainer/loss.h"

#include <gtest/gtest.h>

namespace trainguard {
namespace {

namespace F = torch::nn::functional;

TEST(Loss, EqualsTorchMeanWhenOneRankHoldsTheWholeBatch) {
  torch::manual_seed(1);
  auto logits = torch::randn({6, 4});
  auto targets = torch::tensor({0, -1, 3, 2, -1, 1}, torch::kInt64);
  auto ours = GlobalMeanCrossEntropy(logits, targets, -1, 4);
  auto theirs = F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().ignore_index(-1));
  EXPECT_NEAR(ours.item<double>(), theirs.item<double>(), 1e-6);
}

TEST(Loss, AllIgnoredBatchContributesZeroAndZeroGradient) {
  auto logits = torch::randn({3, 5}, torch::requires_grad());
  auto targets = torch::full({3}, -100, torch::kInt64);
  auto loss = GlobalMeanCrossEntropy(logits, targets, -100, 0);
  EXPECT_EQ(loss.item<double>(), 0.0);
  loss.backward();
  EXPECT_EQ(logits.grad().abs().sum().item<double>(), 0.0);
  auto torch_mean = F::cross_entropy(logits, targets, F::CrossEntropyFuncOptions().ignore_index(-100));
  EXPECT_TRUE(std::isnan(torch_mean.item<double>())) << "PyTorch's mean is NaN here; ours must not be";
}

TEST(Loss, DividesByTheGlobalCountNotTheLocalOne) {
  auto logits = torch::randn({2, 3});
  auto targets = torch::tensor({1, 255}, torch::kInt64);
  auto local = GlobalMeanCrossEntropy(logits, targets, 255, 1);
  auto global = GlobalMeanCrossEntropy(logits, targets, 255, 4);
  EXPECT_NEAR(global.item<double>() * 4, local.item<double>(), 1e-6);
}

TEST(Loss, OutOfRangeTargetRaisesOnCpu) {
  auto logits = torch::randn({2, 11});
  auto targets = torch::tensor({3, 11}, torch::kInt64);
  EXPECT_THROW(GlobalMeanCrossEntropy(logits, targets, -1, 2), c10::Error);
}

}  // namespace
}  // namespace trainguard
