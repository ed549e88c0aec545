// A non-finite step never reaches the weights, on any rank: the verdict every rank reaches in the
// step comes before the optimizer's update. A step without host synchronisation (reading the
// verdict one step late) must keep this guarantee; this is its test on the CPU plane.
#include <gtest/gtest.h>
#include <mpi.h>

#include <limits>

#include "tests/support/synthetic_config.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/core/errors.h"
#include "trainer/data/synthetic.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

std::vector<torch::Tensor> Clone(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> out;
  for (const auto& p : params) out.push_back(p.detach().clone());
  return out;
}

// Poisons one pixel of this rank's batch at `step` (when `here`).
class NanAtStep final : public StepHooks {
 public:
  NanAtStep(int64_t step, bool here) : step_(step), here_(here) {}
  void BeforeStep(const StepReport& where, Batch& batch) override {
    if (here_ && where.global_step == step_) batch.images[0].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
  }

 private:
  int64_t step_;
  bool here_;
};

// The weights after each step that passed.
class LastGoodWeights final : public StepHooks {
 public:
  void AfterStep(const StepReport& where, torch::nn::Module& model) override {
    step = where.global_step;
    weights = Clone(model.parameters());
  }
  int64_t step = 0;
  std::vector<torch::Tensor> weights;
};

TEST(DistNonFinite, ANanInOneRanksBatchNeverReachesAnyRanksWeights) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD);
  auto data = MakeSyntheticDataset({90, 4, {1, 32, 32}, 2, 0.5, {}});
  TrainConfig config = testing::SyntheticConfig(8, 5);
  config.evaluate = false;
  NanAtStep nan(3, control.rank() == control.world() - 1);
  LastGoodWeights good;
  TrainContext context{control, plane, torch::kCPU, {}, {&nan, &good}};
  Trainer trainer(config, *data, nullptr, context);
  try {
    trainer.Run();
    ADD_FAILURE() << "the step with a NaN passed";
  } catch (const FaultError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNonFinite) << e.what();
  }
  ASSERT_EQ(good.step, 2) << "steps 1 and 2 passed, step 3 failed on every rank";
  const auto now = trainer.model()->parameters();
  ASSERT_EQ(now.size(), good.weights.size());
  for (size_t i = 0; i < now.size(); ++i) {
    EXPECT_TRUE(torch::isfinite(now[i]).all().item<bool>()) << "parameter " << i;
    EXPECT_TRUE(torch::equal(now[i], good.weights[i])) << "parameter " << i << " changed in the failed step";
  }
}

}  // namespace
}  // namespace trainguard
