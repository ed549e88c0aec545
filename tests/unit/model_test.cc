// The HW3 classifier: shapes for HW3's 128x128 RGB and padded Fashion-MNIST, width scaling,
// and clear errors for sizes the five poolings cannot take.
#include <gtest/gtest.h>

#include "trainer/core/errors.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {
namespace {

int64_t ParameterCount(Hw3Net& net) {
  int64_t n = 0;
  for (const auto& p : net->parameters()) n += p.numel();
  return n;
}

TEST(Hw3Net, Hw3ShapeGivesElevenLogits) {
  Hw3Net net(Hw3Options{3, 128, 1.0, 11});
  auto out = net->forward(torch::randn({2, 3, 128, 128}));
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{2, 11}));
  // First FC layer of HW3 is 512*4*4 -> 1024.
  auto fc = net->classifier[1]->as<torch::nn::Linear>();
  EXPECT_EQ(fc->weight.sizes(), (std::vector<int64_t>{1024, 8192}));
}

TEST(Hw3Net, GrayscaleThirtyTwoAtQuarterWidth) {
  Hw3Net net(Hw3Options{1, 32, 0.25, 10});
  EXPECT_EQ(net->forward(torch::randn({4, 1, 32, 32})).sizes(), (std::vector<int64_t>{4, 10}));
  Hw3Net full(Hw3Options{1, 32, 1.0, 10});
  EXPECT_GT(ParameterCount(full), 10 * ParameterCount(net));
}

TEST(Hw3Net, SizeNotDivisibleByThirtyTwoIsAConfigError) {
  EXPECT_THROW(Hw3Net(Hw3Options{1, 28, 1.0, 10}), ConfigError);
  EXPECT_THROW(Hw3Net(Hw3Options{1, 32, 0.0, 10}), ConfigError);
}

}  // namespace
}  // namespace trainguard
