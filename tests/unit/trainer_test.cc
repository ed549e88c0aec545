// The training loop in one process: it learns, and stop + resume reaches the same parameters
// as an uninterrupted run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "tests/support/synthetic_config.h"
#include "trainer/core/errors.h"
#include "trainer/data/synthetic.h"
#include "trainer/evaluate.h"
#include "trainer/model/bn_relu_pool.h"
#include "trainer/precision.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

namespace fs = std::filesystem;

TrainConfig SmallConfig() {
  TrainConfig c = testing::SyntheticConfig(16, 11);
  c.epochs = 2;
  c.lr = 1e-3;
  c.evaluate = false;
  return c;
}

std::vector<torch::Tensor> Params(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  return out;
}

class LossRecorder final : public TrainObserver {
 public:
  void OnStepEnd(const StepReport& r) override { losses.push_back(r.loss); }
  std::vector<double> losses;
};

TEST(Trainer, LossFallsOnSyntheticData) {
  auto data = MakeSyntheticDataset({256, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  LossRecorder recorder;
  TrainConfig c = SmallConfig();
  c.epochs = 3;
  Trainer t(c, *data, nullptr, {control, plane, torch::kCPU, {&recorder}});
  const TrainSummary s = t.Run();
  EXPECT_EQ(s.steps_this_run, 48);
  ASSERT_EQ(recorder.losses.size(), 48u);
  EXPECT_LT(recorder.losses.back(), 0.5 * recorder.losses.front());
}

class AccuracyRecorder final : public TrainObserver {
 public:
  void OnEpochEnd(const EpochReport& r) override { accuracies.push_back(r.train_accuracy); }
  std::vector<double> accuracies;
};

TEST(Trainer, TrainAccuracyOfEachEpochIsReportedAndRises) {
  auto data = MakeSyntheticDataset({256, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  AccuracyRecorder recorder;
  TrainConfig c = SmallConfig();
  c.epochs = 3;
  Trainer(c, *data, nullptr, {control, plane, torch::kCPU, {&recorder}}).Run();
  ASSERT_EQ(recorder.accuracies.size(), 3u);
  for (double a : recorder.accuracies) EXPECT_TRUE(a >= 0 && a <= 1) << a;
  EXPECT_GT(recorder.accuracies.back(), recorder.accuracies.front());
  EXPECT_GT(recorder.accuracies.back(), 0.8) << "4 separable classes after 3 epochs";
}

// bf16 autocast (what --precision bf16 runs on a GPU) works on the CPU too: the model learns as
// in fp32, its parameters stay fp32, and the first step's update is close to fp32's.
TEST(Trainer, Bf16AutocastLearnsWithFp32WeightsCloseToFp32) {
  auto data = MakeSyntheticDataset({256, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  LossRecorder bf16_losses;
  TrainConfig c = SmallConfig();
  c.precision = "bf16";
  Trainer bf16(c, *data, nullptr, {control, plane, torch::kCPU, {&bf16_losses}});
  bf16.Run();
  ASSERT_EQ(bf16_losses.losses.size(), 32u);
  EXPECT_LT(bf16_losses.losses.back(), 0.5 * bf16_losses.losses.front());
  for (const auto& p : bf16.model()->parameters()) EXPECT_EQ(p.scalar_type(), torch::kFloat);
  EXPECT_FALSE(at::autocast::is_autocast_enabled(torch::kCPU)) << "autocast is left off after the step";

  // One step from the same weights: the updates agree to bf16's precision.
  TrainConfig one = SmallConfig();
  one.max_steps = 1;
  Trainer fp32_step(one, *data, nullptr, {control, plane, torch::kCPU, {}});
  one.precision = "bf16";
  Trainer bf16_step(one, *data, nullptr, {control, plane, torch::kCPU, {}});
  const auto before = Params(fp32_step);
  fp32_step.Run();
  bf16_step.Run();
  const auto a = Params(fp32_step), b = Params(bf16_step);
  double diff = 0, size = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - b[i]).pow(2).sum().item<double>();
    size += (a[i] - before[i]).pow(2).sum().item<double>();
  }
  EXPECT_GT(size, 0);
  EXPECT_LT(std::sqrt(diff / size), 0.25) << "relative difference of the first update";
}

// One epoch of the small model on `device`, through the modules and with the fused blocks, from
// the same seed: each side's losses and final parameters.
struct FusedAndPlain {
  std::vector<double> plain_losses, fused_losses;
  torch::OrderedDict<std::string, torch::Tensor> plain, fused;
};

FusedAndPlain TrainFusedAndPlain(TrainConfig c, torch::Device device) {
  auto data = MakeSyntheticDataset({256, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  c.epochs = 1;
  LossRecorder plain_losses, fused_losses;
  c.fused_blocks = "off";
  Trainer plain(c, *data, nullptr, {control, plane, device, {&plain_losses}});
  c.fused_blocks = "on";
  Trainer fused(c, *data, nullptr, {control, plane, device, {&fused_losses}});
  plain.Run();
  fused.Run();
  return {plain_losses.losses, fused_losses.losses, plain.model()->named_parameters(),
          fused.model()->named_parameters()};
}

// --fused-blocks on trains the same model as the modules do: the same losses step by step, and
// parameters that agree after an epoch. Conv biases aside: BatchNorm cancels them, so their
// gradient is rounding noise through the modules (which Adam scales up to full-size steps) and
// exactly zero through the fused blocks.
TEST(Trainer, FusedBlocksTrainLikeTheModules) {
  EXPECT_FALSE(UseFusedBlocks(SmallConfig(), torch::kCPU)) << "auto: slower on the CPU, so not used";
  const FusedAndPlain run = TrainFusedAndPlain(SmallConfig(), torch::kCPU);
  ASSERT_EQ(run.fused_losses.size(), 16u);
  for (size_t i = 0; i < 16; ++i) EXPECT_NEAR(run.fused_losses[i], run.plain_losses[i], 1e-3) << "step " << i;
  for (const auto& item : run.plain) {
    const bool conv_bias =
        item.key().rfind("features.", 0) == 0 && item.value().dim() == 1 && std::stoi(item.key().substr(9)) % 4 == 0;
    if (conv_bias) continue;
    EXPECT_TRUE(torch::allclose(item.value(), run.fused[item.key()], 1e-2, 1e-3)) << item.key();
  }
}

// The same on CUDA in bf16 autocast, the setting the fused kernels are for (label gpu, through
// gpu.fused_blocks; skipped without a visible GPU). bf16 rounds differently on the two paths, so
// the losses agree loosely and both must fall.
TEST(TrainerGpu, FusedBlocksTrainLikeTheModulesInBf16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device is visible";
  if (!BnReluPoolSupported(torch::kCUDA)) GTEST_SKIP() << "built without the fused CUDA kernels";
  TrainConfig c = SmallConfig();
  c.precision = "bf16";
  const FusedAndPlain run = TrainFusedAndPlain(c, torch::kCUDA);
  ASSERT_EQ(run.fused_losses.size(), 16u);
  EXPECT_NEAR(run.fused_losses[0], run.plain_losses[0], 2e-2);
  for (size_t i = 0; i < 16; ++i) EXPECT_NEAR(run.fused_losses[i], run.plain_losses[i], 0.15) << "step " << i;
  EXPECT_LT(run.fused_losses.back(), 0.5 * run.fused_losses.front());
}

// What CUDA raises inside a step after a kernel's assert (cudaErrorAssert), here from a hook.
class DeviceAssertAtStep final : public StepHooks {
 public:
  void AfterStep(const StepReport& where, torch::nn::Module&) override {
    if (where.global_step == 2) throw c10::AcceleratorError({__func__, __FILE__, __LINE__}, 710, "device-side assert");
  }
};

// After a device-side assert every CUDA call fails, so the batch and the model must not be freed
// by unwinding: the trainer hands the error to on_device_lost while they are alive.
TEST(Trainer, DeviceAssertGoesToOnDeviceLostBeforeUnwinding) {
  auto data = MakeSyntheticDataset({64, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  DeviceAssertAtStep fault;
  TrainContext context{control, plane, torch::kCPU, {}, {&fault}};
  std::string seen;
  context.on_device_lost = [&](const std::exception& e) {
    const auto* fault_error = dynamic_cast<const FaultError*>(&e);
    ASSERT_NE(fault_error, nullptr);
    EXPECT_EQ(fault_error->kind(), ErrorKind::kDeviceAssert);
    seen = e.what();
    throw std::logic_error("ended by on_device_lost");  // production ends the process here
  };
  Trainer trainer(SmallConfig(), *data, nullptr, context);
  EXPECT_THROW(trainer.Run(), std::logic_error);
  EXPECT_NE(seen.find("step 2"), std::string::npos) << seen;
}

TEST(Trainer, StopAndResumeMatchesAnUninterruptedRun) {
  auto data = MakeSyntheticDataset({200, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  const std::string ckpt = (fs::temp_directory_path() / ("tg_resume_" + std::to_string(getpid()))).string();

  TrainConfig whole = SmallConfig();
  Trainer uninterrupted(whole, *data, nullptr, {control, plane, torch::kCPU, {}});
  const TrainSummary full = uninterrupted.Run();
  EXPECT_EQ(full.end.epoch, 2);

  TrainConfig first = SmallConfig();
  first.checkpoint = ckpt;
  first.max_steps = 17;  // 13 steps per epoch: stops 4 steps into the second epoch
  Trainer part1(first, *data, nullptr, {control, plane, torch::kCPU, {}});
  const TrainSummary stopped = part1.Run();
  EXPECT_EQ(stopped.end.epoch, 1);
  EXPECT_EQ(stopped.end.step_in_epoch, 4);

  TrainConfig second = SmallConfig();
  second.checkpoint = ckpt;
  second.resume = "yes";
  Trainer part2(second, *data, nullptr, {control, plane, torch::kCPU, {}});
  const TrainSummary resumed = part2.Run();
  EXPECT_EQ(resumed.steps_this_run, full.steps_this_run - 17);
  EXPECT_EQ(resumed.end.global_step, full.end.global_step);

  const auto a = Params(uninterrupted), b = Params(part2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
  fs::remove(ckpt);
}

// A dataset whose images take `delay` to build, as JPEGs that decode slower than the steps run.
class SlowDataset final : public Dataset {
 public:
  SlowDataset(const Dataset& inner, std::chrono::milliseconds delay) : inner_(inner), delay_(delay) {}
  int64_t size() const override { return inner_.size(); }
  RawLabel label(int64_t i) const override { return inner_.label(i); }
  std::string source(int64_t i) const override { return inner_.source(i); }
  ImageShape shape() const override { return inner_.shape(); }
  int64_t num_classes() const override { return inner_.num_classes(); }
  ImageBatch Images(const std::vector<int64_t>& indices, const ImageRequest& request) const override {
    std::this_thread::sleep_for(delay_);
    return inner_.Images(indices, request);
  }

 private:
  const Dataset& inner_;
  std::chrono::milliseconds delay_;
};

TEST(Trainer, ReportsTheTimeStepsWaitedForTheLoader) {
  auto data = MakeSyntheticDataset({128, 4, {1, 32, 32}, 3, 0.5, {}});
  const SlowDataset slow(*data, std::chrono::milliseconds(200));
  SoloControlPlane control;
  SoloDataPlane plane;
  TrainConfig c = SmallConfig();
  c.epochs = 1;
  c.loader_threads = 1;
  Trainer t(c, slow, nullptr, {control, plane, torch::kCPU, {}});
  const TrainSummary s = t.Run();
  // 8 batches of 200 ms each against steps of a few ms: the loop mostly waits.
  EXPECT_GT(s.loader_wait_seconds, 0.5 * s.loop_seconds);
  EXPECT_LE(s.loader_wait_seconds, s.loop_seconds);
  EXPECT_NE(LoaderWaitLine(s).find("raise --loader-threads"), std::string::npos) << LoaderWaitLine(s);
}

TEST(Trainer, NoThroughputFigureWhenNoStepFollowsTheWarmup) {
  auto data = MakeSyntheticDataset({64, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  SoloDataPlane plane;
  TrainConfig c = SmallConfig();
  c.epochs = 1;
  c.max_steps = 3;
  c.warmup_steps = 3;
  EXPECT_FALSE(Trainer(c, *data, nullptr, {control, plane, torch::kCPU, {}}).Run().images_per_second);
  c.warmup_steps = 1;
  const auto figure = Trainer(c, *data, nullptr, {control, plane, torch::kCPU, {}}).Run().images_per_second;
  ASSERT_TRUE(figure);
  EXPECT_GT(*figure, 0);
}

TEST(Trainer, LoaderWaitLineHintsOnlyWhenStepsWaitMuch) {
  TrainSummary s;
  s.loop_seconds = 120;
  s.loader_wait_seconds = 0.4;
  EXPECT_EQ(LoaderWaitLine(s), "loader wait: 0.4 s of 120.0 s in the training loop (0.3%)");
  s.loader_wait_seconds = 30;
  EXPECT_NE(LoaderWaitLine(s).find("(25.0%); decoding does not keep up"), std::string::npos);
}

TEST(Trainer, EvaluationScoresTheSameWithLoaderThreads) {
  auto data = MakeSyntheticDataset({100, 4, {1, 32, 32}, 3, 0.5, {}});
  SoloControlPlane control;
  Hw3Net model = MakeModel(SmallConfig(), *data);
  const Accuracy inline_loader = Evaluate(model, *data, control, torch::kCPU, 16, -1, {0, 4, false});
  const Accuracy threads = Evaluate(model, *data, control, torch::kCPU, 16, -1, {3, 1, false});
  EXPECT_EQ(inline_loader.total, 100);
  EXPECT_EQ(threads.total, 100);
  EXPECT_EQ(threads.correct, inline_loader.correct);
}

}  // namespace
}  // namespace trainguard
