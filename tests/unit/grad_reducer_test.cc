// GradReducer against fake data planes: with one rank the gradients are unchanged; with a plane
// that sums k identical ranks they are multiplied by k; buckets respect the cap and every
// collective is launched in the same order.
#include "trainer/comm/grad_reducer.h"

#include <gtest/gtest.h>

#include "trainer/model/hw3_net.h"

namespace trainguard {
namespace {

// Sums `ranks` identical copies: the result is ranks * tensor. Records launch sizes.
class ReplicatingPlane final : public DataPlane {
 public:
  explicit ReplicatingPlane(int ranks) : ranks_(ranks) {}
  std::unique_ptr<PendingReduce> StartSum(torch::Tensor t) override {
    launches.push_back(t.numel());
    t.mul_(ranks_);
    return std::make_unique<CompletedReduce>();
  }
  void Broadcast(torch::Tensor, int) override {}
  std::vector<int64_t> launches;

 private:
  int ranks_;
};

std::vector<torch::Tensor> GradsAfterBackward(Hw3Net& net, DataPlane* plane, int64_t cap) {
  std::unique_ptr<GradReducer> reducer;
  if (plane) reducer = std::make_unique<GradReducer>(net->parameters(), *plane, cap);
  torch::manual_seed(3);
  auto x = torch::randn({4, 1, 32, 32});
  net->zero_grad();
  net->forward(x).pow(2).mean().backward();
  if (reducer) reducer->Finish();
  std::vector<torch::Tensor> grads;
  for (auto& p : net->parameters()) grads.push_back(p.grad().clone());
  return grads;
}

TEST(GradReducer, SumOfIdenticalRanksScalesGradients) {
  torch::manual_seed(0);
  Hw3Net net(Hw3Options{1, 32, 0.25, 10});
  const auto plain = GradsAfterBackward(net, nullptr, 0);
  ReplicatingPlane plane(3);
  const auto reduced = GradsAfterBackward(net, &plane, 64 * 1024);
  ASSERT_EQ(plain.size(), reduced.size());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(torch::allclose(reduced[i], plain[i] * 3)) << i;
  EXPECT_GT(plane.launches.size(), 1u) << "a 64 KiB cap must split this model into several buckets";
}

TEST(GradReducer, LaunchOrderIsTheSameEveryStep) {
  torch::manual_seed(0);
  Hw3Net net(Hw3Options{1, 32, 0.25, 10});
  ReplicatingPlane plane(1);
  GradReducer reducer(net->parameters(), plane, 32 * 1024);
  for (int step = 0; step < 2; ++step) {
    net->zero_grad();
    net->forward(torch::randn({2, 1, 32, 32})).sum().backward();
    reducer.Finish();
  }
  const size_t n = reducer.bucket_count();
  ASSERT_EQ(plane.launches.size(), 2 * n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(plane.launches[i], plane.launches[n + i]);
}

TEST(GradReducer, ParameterWithoutGradientIsReducedAsZeros) {
  auto used = torch::ones({3}, torch::requires_grad());
  auto unused = torch::ones({2}, torch::requires_grad());
  ReplicatingPlane plane(2);
  GradReducer reducer({used, unused}, plane, 1 << 20);
  (used * 2).sum().backward();
  reducer.Finish();
  EXPECT_TRUE(torch::allclose(used.grad(), torch::full({3}, 4.0)));
  EXPECT_TRUE(torch::allclose(unused.grad(), torch::zeros({2})));
}

}  // namespace
}  // namespace trainguard
