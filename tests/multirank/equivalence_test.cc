// Data-parallel equivalence under mpirun (2 and 3 ranks): W ranks, each training on its part
// of a global batch, reach the same parameters as one process that runs the same global batch
// as the same W micro-batches with gradient accumulation (what data parallelism computes: the
// BatchNorm statistics are per rank, as in PyTorch DDP without SyncBatchNorm). Steps alternate
// between two global batches: in A the last rank's part is entirely ignored; in B every rank
// has a different count of ignored labels, so normalising by a local count would be caught.
// The GPU variant (label gpu) trains the ranks on CUDA over the MPI plane, which stages the
// gradients through host memory, so that several ranks share one GPU; the reference stays on
// the CPU.
#include <gtest/gtest.h>
#include <mpi.h>

#include "tests/support/param_compare.h"
#include "tests/support/synthetic_config.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/data/synthetic.h"
#include "trainer/loss.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

constexpr int64_t kGlobalBatch = 12;
constexpr int kSteps = 6;
// Largest |ours - reference| allowed per parameter element after kSteps Adam steps in float32;
// the only difference is the order of floating-point sums across ranks.
constexpr double kTolerance = 1e-5;
// On CUDA against the CPU reference (see tests/support/param_compare.h): the first step's
// gradients within 1%, the parameter updates after kSteps within 25%.
constexpr double kGpuGradientTolerance = 1e-2;
constexpr double kGpuUpdateTolerance = 0.25;

// Rank r's part of the global batch that starts at `first`: first + r, first + r + W, ...
std::vector<int64_t> PartOf(int rank, int world, int64_t first) {
  std::vector<int64_t> part;
  for (int64_t i = rank; i < kGlobalBatch; i += world) part.push_back(first + i);
  return part;
}

// The global batch of a step: A (samples 0..11) on even steps, B (12..23) on odd ones.
int64_t FirstOfStep(int step) { return step % 2 == 0 ? 0 : kGlobalBatch; }

TrainConfig Config(int world) {
  TrainConfig c = testing::SyntheticConfig(kGlobalBatch / world, 5);
  c.lr = 1e-3;
  c.bucket_mb = 0.05;  // several buckets, so that overlap and ordering are exercised
  return c;
}

std::unique_ptr<Dataset> DatasetWithIgnoredLabels(int world) {
  SyntheticOptions o;
  o.samples = 2 * kGlobalBatch;
  o.classes = 4;
  o.seed = 9;
  // A: the last rank's part unlabelled, and one explicit -1 elsewhere.
  for (int64_t i : PartOf(world - 1, world, 0)) o.label_overrides[i] = RawLabel{};
  o.label_overrides[0] = RawLabel{-1, "-1"};
  // B: rank r loses r + 1 of its samples (within the part, so counts differ per rank).
  for (int r = 0; r < world; ++r) {
    const auto part = PartOf(r, world, kGlobalBatch);
    for (int k = 0; k <= r && k < static_cast<int>(part.size()) - 1; ++k) {
      o.label_overrides[part[static_cast<size_t>(k)]] = RawLabel{-1, "-1"};
    }
  }
  return MakeSyntheticDataset(o);
}

// One process, micro-batches accumulated, loss normalised by the global valid count, for
// `steps` steps: the model afterwards (its gradients are those of the last step).
Hw3Net Reference(const TrainConfig& c, const Dataset& data, int world, int steps) {
  Hw3Net model = MakeModel(c, data);
  auto adam = MakeOptimizer(c, model);
  for (int step = 0; step < steps; ++step) {
    std::vector<Batch> parts;
    int64_t valid = 0;
    for (int r = 0; r < world; ++r) {
      parts.push_back(MakeBatch(data, PartOf(r, world, FirstOfStep(step)), c.ignore_index));
      valid += parts.back().valid_targets;
    }
    adam->zero_grad();
    for (const Batch& b : parts) {
      GlobalMeanCrossEntropy(model->forward(b.images), b.targets, c.ignore_index, valid).backward();
    }
    adam->step();
  }
  return model;
}

// Runs kSteps steps of this rank's part with `trainer`; `after_step(step, trainer)` runs after
// each.
template <typename AfterStep>
void TrainRanks(Trainer& trainer, const ControlPlane& control, const TrainConfig& c, const Dataset& data,
                AfterStep after_step) {
  const int world = control.world();
  for (int step = 0; step < kSteps; ++step) {
    const Batch mine = MakeBatch(data, PartOf(control.rank(), world, FirstOfStep(step)), c.ignore_index);
    if (step == 0 && control.rank() == world - 1) {
      EXPECT_EQ(mine.valid_targets, 0) << "part all ignored";
    }
    EXPECT_TRUE(std::isfinite(trainer.Step(mine)));
    after_step(step, trainer);
  }
}

TEST(Equivalence, RanksMatchOneProcessOnTheGlobalBatch) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD);
  const int world = control.world();
  ASSERT_EQ(kGlobalBatch % world, 0);
  const TrainConfig c = Config(world);
  auto data = DatasetWithIgnoredLabels(world);
  Trainer trainer(c, *data, nullptr, {control, plane, torch::kCPU, {}});
  TrainRanks(trainer, control, c, *data, [](int, Trainer&) {});

  const auto expected = testing::Parameters(*Reference(c, *data, world, kSteps));
  const auto ours = testing::Parameters(*trainer.model());
  ASSERT_EQ(ours.size(), expected.size());
  double worst = 0;
  for (size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, (ours[i] - expected[i]).abs().max().item<double>());
  ::testing::Test::RecordProperty("max_abs_diff", std::to_string(worst));
  std::printf("rank %d of %d: max |ours - reference| = %.3g\n", control.rank(), world, worst);
  EXPECT_LE(worst, kTolerance);
  // And the parameters moved: a zero update would pass the comparison trivially.
  Hw3Net fresh = MakeModel(c, *data);
  EXPECT_GT((ours[0] - fresh->parameters()[0]).abs().max().item<double>(), 1e-4);
}

TEST(Equivalence, GpuRanksSharingTheGpuOverMpiMatchOneCpuProcess) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device is visible";
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD);  // CUDA tensors: staged through host memory
  const int world = control.world();
  ASSERT_EQ(kGlobalBatch % world, 0);
  const TrainConfig c = Config(world);
  auto data = DatasetWithIgnoredLabels(world);
  const auto start = testing::Parameters(*MakeModel(c, *data));
  Trainer trainer(c, *data, nullptr, {control, plane, torch::Device(torch::kCUDA, 0), {}});
  TrainRanks(trainer, control, c, *data, [&](int step, Trainer& t) {
    if (step != 0) return;
    const double g =
        testing::RelativeDifference(testing::Gradients(*t.model()), testing::Gradients(*Reference(c, *data, world, 1)));
    std::printf("rank %d of %d on cuda: first step's gradients differ from the CPU's by %.3g (relative)\n",
                control.rank(), world, g);
    EXPECT_LE(g, kGpuGradientTolerance);
  });
  const double u = testing::RelativeDifference(testing::Parameters(*trainer.model()),
                                               testing::Parameters(*Reference(c, *data, world, kSteps)), start);
  std::printf("rank %d of %d on cuda: parameter updates after %d steps differ from the CPU's by %.3g (relative)\n",
              control.rank(), world, kSteps, u);
  EXPECT_LE(u, kGpuUpdateTolerance);
}

}  // namespace
}  // namespace trainguard
