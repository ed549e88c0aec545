// The data planes under mpirun.
//  - MpiDataPlane's host staging (the path CUDA tensors take, so that ranks can share a GPU),
//    forced on CPU tensors: sums and broadcasts land in the caller's tensor, in its layout.
//  - GPU (label gpu, 1 rank): the NCCL plane trains 30 synthetic steps on CUDA; the loss falls,
//    and the gradients and parameter updates match a CPU fp32 run of the same steps.
#include <gtest/gtest.h>
#include <mpi.h>

#include <numeric>

#include "tests/support/param_compare.h"
#include "tests/support/synthetic_config.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/data/synthetic.h"
#include "trainer/train.h"
#ifdef TRAINGUARD_WITH_NCCL
#include "trainer/comm/nccl_data_plane.h"
#endif

namespace trainguard {
namespace {

TEST(MpiDataPlane, StagedSumLandsInTheCallersTensorInItsLayout) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD, /*stage_host_tensors=*/true);
  const int r = control.rank(), world = control.world();
  // Channels-last, like the convolution gradients: the bytes are summed, the layout kept.
  auto t =
      torch::arange(2 * 3 * 4 * 5, torch::kFloat32).view({2, 3, 4, 5}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto mine = (t * (r + 1)).contiguous(torch::MemoryFormat::ChannelsLast);
  plane.StartSum(mine)->Wait();
  EXPECT_TRUE(mine.is_contiguous(torch::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(torch::equal(mine, t * (world * (world + 1) / 2)));
}

TEST(MpiDataPlane, StagedBroadcastReplacesEveryRanksTensor) {
  MpiControlPlane control(MPI_COMM_WORLD);
  MpiDataPlane plane(MPI_COMM_WORLD, /*stage_host_tensors=*/true);
  auto t = torch::full({7}, static_cast<double>(control.rank() + 10), torch::kFloat64);
  plane.Broadcast(t, 0);
  EXPECT_TRUE(torch::equal(t, torch::full({7}, 10.0, torch::kFloat64)));
}

#ifdef TRAINGUARD_WITH_NCCL
// GPU against CPU (see tests/support/param_compare.h): the first step's gradients within 1%
// (rounding alone, TF32 included), the parameter updates after 30 steps within 25% (training
// amplifies rounding; a wrong reduction or loss would differ by about 100%).
constexpr double kGradientTolerance = 1e-2;
constexpr double kUpdateTolerance = 0.25;
constexpr int kNcclSteps = 30;

TEST(Gpu, NcclOneRankTrainsAsTheCpuDoes) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device is visible";
  MpiControlPlane control(MPI_COMM_WORLD);
  if (control.world() != 1) GTEST_SKIP() << "NCCL allows one rank per GPU: this test runs with 1 rank";
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setAllowTF32CuBLAS(false);
  const TrainConfig c = testing::SyntheticConfig(32, 3);
  SyntheticOptions o;
  o.samples = 32 * kNcclSteps;
  o.seed = 3;
  auto data = MakeSyntheticDataset(o);

  auto nccl = MakeNcclDataPlane(control, {0, 60, ""}, nullptr);
  Trainer gpu(c, *data, nullptr, {control, *nccl, torch::Device(torch::kCUDA, 0), {}});
  SoloControlPlane solo;
  SoloDataPlane solo_plane;
  Trainer cpu(c, *data, nullptr, {solo, solo_plane, torch::kCPU, {}});
  const auto start = testing::Parameters(*cpu.model());
  std::vector<double> losses;
  for (int step = 0; step < kNcclSteps; ++step) {
    std::vector<int64_t> rows(32);
    std::iota(rows.begin(), rows.end(), 32 * step);
    const Batch b = MakeBatch(*data, rows, c.ignore_index);
    losses.push_back(gpu.Step(b));
    cpu.Step(b);
    if (step == 0) {
      const double g = testing::RelativeDifference(testing::Gradients(*gpu.model()), testing::Gradients(*cpu.model()));
      std::printf("NCCL on cuda:0: first step's gradients differ from the CPU's by %.3g (relative)\n", g);
      EXPECT_LE(g, kGradientTolerance);
    }
  }
  nccl->Shutdown();
  std::printf("NCCL on cuda:0: loss %.4f at step 1, %.4f at step %d\n", losses.front(), losses.back(), kNcclSteps);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  const double u =
      testing::RelativeDifference(testing::Parameters(*gpu.model()), testing::Parameters(*cpu.model()), start);
  std::printf("NCCL on cuda:0: parameter updates after %d steps differ from the CPU's by %.3g (relative)\n", kNcclSteps,
              u);
  EXPECT_LE(u, kUpdateTolerance);
}
#endif

}  // namespace
}  // namespace trainguard
