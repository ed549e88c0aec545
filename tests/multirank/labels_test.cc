// Label validation under mpirun (2 and 3 ranks): a bad label that only one rank holds stops
// every rank with the same error before any step; the drop policy leaves equal step counts.
#include <gtest/gtest.h>
#include <mpi.h>

#include "diagnostics/labels/label_guard.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/core/errors.h"
#include "trainer/core/sharding.h"
#include "trainer/data/synthetic.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

// Counts the steps a rank runs.
class StepCounter final : public TrainObserver {
 public:
  void OnStepEnd(const StepReport&) override { ++steps; }
  int64_t steps = 0;
};

std::unique_ptr<Dataset> DataWithBadLabel(int64_t bad_index, RawLabel bad) {
  SyntheticOptions o;
  o.samples = 60;
  o.classes = 11;
  o.seed = 4;
  o.label_overrides[bad_index] = std::move(bad);
  return MakeSyntheticDataset(o);
}

LabelCheckOptions Options(LabelAction action) {
  LabelCheckOptions o;
  o.policy = {action, action, action};
  o.num_classes = 11;
  return o;
}

TrainConfig Config() {
  TrainConfig c;
  c.width = 0.25;
  c.batch_size = 8;
  c.epochs = 1;
  c.evaluate = false;
  return c;
}

TEST(DistLabels, BadLabelOnOneRankStopsEveryRankBeforeTheFirstStep) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD);
  // Sample 0 sits on exactly one rank's shard.
  auto data = DataWithBadLabel(0, RawLabel{11, "11"});
  const auto shard = TrainShard({data->size(), control.rank(), control.world(), 0, 0, true, {}});
  const bool holder = std::count(shard.begin(), shard.end(), 0) > 0;
  ASSERT_EQ(SumAcrossRanks(control, holder ? 1 : 0), 1);

  LabelGuard guard(control, *data, Options(LabelAction::kFail), "");
  StepCounter steps;
  Trainer trainer(Config(), *data, nullptr, {control, plane, torch::kCPU, {&guard, &steps}});
  std::string message;
  try {
    trainer.Run();
  } catch (const LabelError& e) {
    message = e.what();
  }
  EXPECT_EQ(steps.steps, 0) << "no step may run with a bad label";
  EXPECT_NE(message.find("sample 0 (synthetic#0) has label '11'"), std::string::npos) << message;
  // The same message on every rank.
  std::string root = message;
  control.Broadcast(root, 0);
  EXPECT_EQ(message, root);
  EXPECT_EQ(guard.report().counts[static_cast<size_t>(LabelKind::kTooLarge)], 1);
}

TEST(DistLabels, DropAndIgnorePoliciesTrainWithEqualStepsAndNoBadTarget) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD);
  for (LabelAction action : {LabelAction::kDrop, LabelAction::kIgnore}) {
    auto data = DataWithBadLabel(5, RawLabel{-3, "-3"});
    LabelGuard guard(control, *data, Options(action), "");
    StepCounter steps;
    // On the CPU an out-of-range target throws inside the loss: finishing proves none got there.
    Trainer trainer(Config(), *data, nullptr, {control, plane, torch::kCPU, {&guard, &steps}});
    ASSERT_NO_THROW(trainer.Run());
    EXPECT_EQ(SumAcrossRanks(control, steps.steps), steps.steps * control.world()) << "equal steps";
  }
}

}  // namespace
}  // namespace trainguard
