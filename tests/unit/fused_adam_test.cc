// FusedAdam against torch::optim::Adam: the same updates (to rounding), the same state, and
// checkpoints that move between the two.
#include "trainer/fused_adam.h"

#include <gtest/gtest.h>

#include <sstream>

namespace trainguard {
namespace {

// A convolution (channels-last weights, as in Hw3Net) and a linear layer. Not Hw3Net itself:
// there BatchNorm cancels the convolution biases, whose gradients are rounding noise that Adam
// scales up to full-size steps, so two correct optimizers part ways on them.
torch::nn::Sequential SmallNet() {
  namespace nn = torch::nn;
  nn::Sequential net(nn::Conv2d(nn::Conv2dOptions(1, 4, 3).padding(1)), nn::ReLU(), nn::Flatten(),
                     nn::Linear(4 * 8 * 8, 10));
  auto w = net->parameters()[0];
  w.set_data(w.contiguous(torch::MemoryFormat::ChannelsLast));
  return net;
}

struct Pair {
  torch::nn::Sequential reference = SmallNet();
  torch::nn::Sequential fused = SmallNet();
  torch::optim::Adam reference_adam;
  FusedAdam fused_adam;
  explicit Pair(const torch::optim::AdamOptions& options)
      : reference_adam(reference->parameters(), options), fused_adam(fused->parameters(), options) {
    torch::NoGradGuard no_grad;
    auto from = reference->parameters(), to = fused->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  // One step of both on the same batch; `skip` names a parameter that gets no gradient.
  void Step(int64_t seed, int skip = -1) {
    torch::manual_seed(seed);
    const auto x = torch::randn({4, 1, 8, 8});
    for (auto [net, adam] : {std::pair<torch::nn::Sequential*, torch::optim::Optimizer*>{&reference, &reference_adam},
                             {&fused, &fused_adam}}) {
      adam->zero_grad();
      (*net)->forward(x).pow(2).mean().backward();
      if (skip >= 0) (*net)->parameters()[skip].mutable_grad() = torch::Tensor();
      adam->step();
    }
  }
  void ExpectClose(double rtol) {
    auto a = reference->parameters(), b = fused->parameters();
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(torch::allclose(a[i], b[i], rtol, 1e-6))
          << "parameter " << i << " max difference " << (a[i] - b[i]).abs().max().item<double>();
    }
  }
};

std::string Saved(const torch::optim::Optimizer& adam) {
  torch::serialize::OutputArchive archive;
  adam.save(archive);
  std::stringstream bytes;
  archive.save_to(bytes);
  return bytes.str();
}

void Load(torch::optim::Optimizer& adam, const std::string& saved) {
  std::stringstream bytes(saved);
  torch::serialize::InputArchive archive;
  archive.load_from(bytes);
  adam.load(archive);
}

int64_t StepCount(torch::optim::Optimizer& adam, const torch::Tensor& p) {
  return static_cast<torch::optim::AdamParamState&>(*adam.state().at(p.unsafeGetTensorImpl())).step();
}

TEST(FusedAdam, MatchesTorchAdamOverManySteps) {
  Pair pair(torch::optim::AdamOptions(1e-3));
  const auto initial = pair.fused->parameters()[0].clone();
  for (int64_t s = 0; s < 20; ++s) pair.Step(s);
  pair.ExpectClose(1e-5);
  // The updates did move the weights: an optimizer that does nothing fails here.
  EXPECT_GT((pair.fused->parameters()[0] - initial).abs().max().item<double>(), 1e-3);
}

TEST(FusedAdam, MatchesTorchAdamWithWeightDecayAndAmsgrad) {
  Pair pair(torch::optim::AdamOptions(3e-3).weight_decay(0.05).amsgrad(true));
  for (int64_t s = 0; s < 12; ++s) pair.Step(s);
  pair.ExpectClose(1e-5);
}

TEST(FusedAdam, ParameterWithoutGradientKeepsItsOwnStepCount) {
  Pair pair(torch::optim::AdamOptions(1e-3));
  for (int64_t s = 0; s < 6; ++s) pair.Step(s, /*skip=*/s % 2 == 0 ? 2 : -1);
  pair.ExpectClose(1e-5);
  const auto p = pair.fused->parameters();
  EXPECT_EQ(StepCount(pair.fused_adam, p[0]), 6);
  EXPECT_EQ(StepCount(pair.fused_adam, p[2]), 3);
  EXPECT_EQ(StepCount(pair.reference_adam, pair.reference->parameters()[2]), 3);
}

TEST(FusedAdam, CheckpointsMoveBetweenTorchAdamAndFusedAdam) {
  Pair pair(torch::optim::AdamOptions(1e-3));
  for (int64_t s = 0; s < 5; ++s) pair.Step(s);
  // Each optimizer goes on from the other's saved state.
  const std::string from_reference = Saved(pair.reference_adam), from_fused = Saved(pair.fused_adam);
  Load(pair.reference_adam, from_fused);
  Load(pair.fused_adam, from_reference);
  EXPECT_EQ(StepCount(pair.fused_adam, pair.fused->parameters()[0]), 5);
  for (int64_t s = 5; s < 10; ++s) pair.Step(s);
  pair.ExpectClose(1e-5);
  EXPECT_EQ(StepCount(pair.fused_adam, pair.fused->parameters()[0]), 10);
}

TEST(FusedAdam, LoadingAnEarlierStateRewindsTheStepCounts) {
  Pair pair(torch::optim::AdamOptions(1e-3));
  for (int64_t s = 0; s < 3; ++s) pair.Step(s);
  const std::string early = Saved(pair.reference_adam);
  for (int64_t s = 3; s < 8; ++s) pair.Step(s);
  // Back to step 3's moments and counts: the bias corrections of the next steps are step 4's.
  Load(pair.reference_adam, early);
  Load(pair.fused_adam, early);
  for (int64_t s = 8; s < 12; ++s) pair.Step(s);
  pair.ExpectClose(1e-5);
  EXPECT_EQ(StepCount(pair.fused_adam, pair.fused->parameters()[0]), 7);
}

}  // namespace
}  // namespace trainguard
