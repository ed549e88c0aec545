// Fault diagnosis on bundles built in the test: the kind of fault, the module, the parameter, the
// rows and samples it names, under which mode and precision the step fails; bundles that
// round-trip or are refused; fault-injection specs and what they plant.
#include <gtest/gtest.h>

#include "diagnostics/faults/diagnose.h"
#include "diagnostics/faults/fault_injection.h"
#include "diagnostics/faults/weight_history.h"
#include "tests/support/temp_dir.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/host_addresses.h"
#include "trainer/model/hw3_net.h"
#include "trainer/step_errors.h"

namespace trainguard {
namespace {

constexpr int64_t kRows = 8;

// A bundle of a healthy batch of 8 rows, 11 classes, for a quarter-width model.
Bundle HealthyBundle() {
  torch::manual_seed(2);
  Hw3Net model(Hw3Options{1, 32, 0.25, 11});
  Bundle b;
  b.meta.kind = "batch_data";
  b.meta.error = "test";
  b.meta.rank = 1;
  b.meta.world = 3;
  b.meta.global_step = 7;
  b.meta.num_classes = 11;
  b.meta.ignore_index = -1;
  b.meta.in_channels = 1;
  b.meta.image_size = 32;
  b.meta.width = 0.25;
  b.meta.device = "cpu";
  b.meta.weights_from = "the failing step's own weights";
  b.meta.weights_own = true;
  for (int64_t r = 0; r < kRows; ++r) {
    b.meta.indices.push_back(100 + r);
    b.meta.sources.push_back("img_" + std::to_string(r) + ".jpg");
    b.meta.raw_labels.push_back(std::to_string(r % 11));
  }
  b.images = torch::randn({kRows, 1, 32, 32});
  b.targets = torch::arange(kRows, torch::kInt64) % 11;
  b.rng_state = at::detail::getDefaultCPUGenerator().get_state();
  b.weights = HostWeights(*model);
  return b;
}

TEST(Diagnose, OutOfRangeLabelNamesTheSampleFileAndLossOperation) {
  Bundle b = HealthyBundle();
  b.targets[5] = 11;
  b.meta.raw_labels[5] = "11";
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "bad_label");
  EXPECT_EQ(d.operation, "cross_entropy / nll_loss");
  ASSERT_EQ(d.rows, (std::vector<int64_t>{5}));
  EXPECT_EQ(d.samples[0], 105);
  EXPECT_EQ(d.files[0], "img_5.jpg");
  EXPECT_EQ(d.labels[0], "11");
  EXPECT_NE(d.hint.find("outside [0, 11)"), std::string::npos) << d.hint;
  EXPECT_NE(d.reproduction.find("out of bounds"), std::string::npos) << d.reproduction;
}

TEST(Diagnose, IgnoreIndexIsNotABadLabel) {
  Bundle b = HealthyBundle();
  b.targets[2] = -1;
  EXPECT_EQ(Diagnose(b).fault, "not_reproduced");
}

TEST(Diagnose, NanInputNamesTheRowAndTheFirstModuleThatIsNotFinite) {
  Bundle b = HealthyBundle();
  b.images[3][0][10][10] = std::numeric_limits<float>::quiet_NaN();
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "non_finite_input");
  EXPECT_EQ(d.module, "features.0 (Conv2d)");
  EXPECT_EQ(d.rows, (std::vector<int64_t>{3}));
  EXPECT_EQ(d.files[0], "img_3.jpg");
}

TEST(Diagnose, OverflowInAModuleIsBisectedToTheRowThatCausesIt) {
  Bundle b = HealthyBundle();
  b.images[6].fill_(3e38f);  // finite, but the convolution overflows
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "non_finite_activation");
  EXPECT_EQ(d.module.rfind("features.", 0), 0u) << d.module;
  EXPECT_EQ(d.rows, (std::vector<int64_t>{6}));
  EXPECT_EQ(d.samples[0], 106);
}

TEST(Diagnose, ABudgetTooShortForTheOptionalReRunsStillNamesTheFaultAndSaysSo) {
  Bundle b = HealthyBundle();
  b.images[6].fill_(3e38f);
  const Diagnosis d = Diagnose(b, 1e-6);
  EXPECT_EQ(d.fault, "non_finite_activation");
  EXPECT_EQ(d.rows, (std::vector<int64_t>{6}));  // the rows the module walk found, not bisected further
  EXPECT_TRUE(d.cut_short);
  EXPECT_NE(d.modes.find("not tried (the time ran out) in training mode, bf16 autocast"), std::string::npos) << d.modes;
  EXPECT_NE(FormatDiagnosis(d).find("cut short: the diagnosis's time"), std::string::npos);
  EXPECT_FALSE(Diagnose(b).cut_short);
}

TEST(Diagnose, HealthyBatchIsNotReproduced) {
  const Diagnosis d = Diagnose(HealthyBundle());
  EXPECT_EQ(d.fault, "not_reproduced");
  EXPECT_FALSE(d.reproduced);
  EXPECT_NE(FormatDiagnosis(d).find("not_reproduced"), std::string::npos);
  // A CPU run re-run on the CPU with its own weights: no machine would do better.
  EXPECT_EQ(d.hint.find("GPU"), std::string::npos) << d.hint;
  EXPECT_NE(d.hint.find("summed over the 3 ranks' batches"), std::string::npos) << d.hint;
  EXPECT_NE(d.detail.find("training mode, fp32, forward and backward"), std::string::npos) << d.detail;
}

// The weights an exploding update leaves: the classifier's grown until the gradient overflows.
TEST(Diagnose, NonFiniteGradientWithFiniteLossNamesTheModuleAndParameter) {
  Bundle b = HealthyBundle();
  b.meta.last_good_step = 6;
  for (const char* name : {"classifier.1.weight", "classifier.3.weight", "classifier.5.weight"}) {
    b.meta.last_good_norms[name] = b.weights.at(name).norm().item<double>();
    b.weights.at(name).mul_(1e7);
  }
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "non_finite_gradient") << FormatDiagnosis(d);
  EXPECT_TRUE(d.reproduced);
  EXPECT_NE(d.reproduction.find("gradient norm inf"), std::string::npos) << d.reproduction;
  ASSERT_FALSE(d.parameter.empty()) << FormatDiagnosis(d);
  EXPECT_EQ(d.parameter.rfind(d.module.substr(0, d.module.find(' ')) + ".", 0), 0u) << d.parameter << " " << d.module;
  EXPECT_NE(d.operation.find("Backward"), std::string::npos) << d.operation;
  EXPECT_NE(d.detail.find("the loss is finite"), std::string::npos) << d.detail;
  // The growth of the last good step's update, x1e7.
  EXPECT_NE(d.weights_growth.find("in the update of step 6"), std::string::npos) << d.weights_growth;
  EXPECT_NE(d.weights_growth.find("x1e+07"), std::string::npos) << d.weights_growth;
  EXPECT_EQ(d.hint.find("GPU"), std::string::npos) << d.hint;
}

// 3.4e38 is finite in fp32; autocast rounds it to bf16's infinity.
TEST(Diagnose, Bf16OnlyOverflowIsNamedWithItsModuleAndRow) {
  Bundle b = HealthyBundle();
  b.images[2][0][16][16] = 3.4e38f;
  b.meta.precision = "bf16";
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "non_finite_activation") << FormatDiagnosis(d);
  EXPECT_TRUE(d.reproduced);
  EXPECT_EQ(d.mode, "training mode, bf16 autocast");
  EXPECT_EQ(d.module, "features.0 (Conv2d)");
  EXPECT_EQ(d.rows, (std::vector<int64_t>{2}));
  EXPECT_EQ(d.differs.rfind("fails in bf16 only: features.0 (Conv2d)'s input exceeds bf16's range", 0), 0u)
      << d.differs;
  // The same batch trained in fp32 passes, and the diagnosis says bf16 would not.
  b.meta.precision = "fp32";
  const Diagnosis fp32 = Diagnose(b);
  EXPECT_EQ(fp32.fault, "not_reproduced") << FormatDiagnosis(fp32);
  EXPECT_NE(fp32.modes.find("fails in training mode, bf16 autocast"), std::string::npos) << fp32.modes;
}

// BatchNorm's batch statistics put half of a channel above its mean, where a scale of 3e38
// overflows; its running mean (1e10) keeps every value below it, where ReLU drops them.
TEST(Diagnose, TrainingModeOnlyFailureIsReproducedAndSaysSo) {
  Bundle b = HealthyBundle();
  b.weights.at("features.17.weight").fill_(3e38f);
  b.weights.at("features.17.running_mean").fill_(1e10f);
  const Diagnosis d = Diagnose(b);
  EXPECT_TRUE(d.reproduced) << FormatDiagnosis(d);
  EXPECT_EQ(d.fault, "non_finite_activation") << FormatDiagnosis(d);
  EXPECT_EQ(d.module, "features.17 (BatchNorm2d)");
  EXPECT_NE(d.modes.find("passes in eval mode, fp32"), std::string::npos) << d.modes;
  EXPECT_EQ(d.differs.rfind("fails in training mode only", 0), 0u) << d.differs;
}

// BatchNorm's epsilon keeps a batch of identical rows (variance 0) finite, and at 32x32 the last
// BatchNorm still sees 2x2 values per channel in a batch of one: in this model neither fails,
// in training mode or in eval mode.
TEST(Diagnose, IdenticalRowsAndABatchOfOnePassInEveryMode) {
  Bundle b = HealthyBundle();
  b.images = b.images[0].expand_as(b.images).clone();
  const Diagnosis identical = Diagnose(b);
  EXPECT_EQ(identical.fault, "not_reproduced") << FormatDiagnosis(identical);
  EXPECT_EQ(identical.modes.find("fails"), std::string::npos) << identical.modes;
  b.images = b.images.slice(0, 0, 1);
  b.targets = b.targets.slice(0, 0, 1);
  const Diagnosis one = Diagnose(b);
  EXPECT_EQ(one.fault, "not_reproduced") << FormatDiagnosis(one);
  EXPECT_EQ(one.modes.find("fails"), std::string::npos) << one.modes;
}

TEST(Diagnose, NanWeightIsTheCauseNamedWithTheUpdateThatLastChangedIt) {
  Bundle b = HealthyBundle();
  b.images[4][0][3][3] = std::numeric_limits<float>::quiet_NaN();  // the weights come first
  b.meta.last_good_step = 6;
  b.meta.last_good_norms["features.4.weight"] = 4.5;
  b.weights.at("features.4.weight")[1][2][0][0] = std::numeric_limits<float>::quiet_NaN();
  b.weights.at("classifier.5.bias")[0] = std::numeric_limits<float>::infinity();  // later in the model's order
  const Diagnosis d = Diagnose(b);
  EXPECT_EQ(d.fault, "non_finite_weights");
  EXPECT_EQ(d.parameter, "features.4.weight");
  EXPECT_EQ(d.module, "features.4 (Conv2d)");
  EXPECT_TRUE(d.rows.empty());
  EXPECT_TRUE(d.reproduced);
  EXPECT_NE(d.detail.find("holds 1 NaN and 0 infinite value(s) of 4608 before the step ran (and 1 later"),
            std::string::npos)
      << d.detail;
  EXPECT_NE(d.detail.find("the update of step 6 last changed it (its norm was 4.5"), std::string::npos) << d.detail;
  EXPECT_NE(d.hint.find("resume from a checkpoint written before step 6"), std::string::npos) << d.hint;
  // Weights loaded that way: no step of this run changed them.
  b.meta.last_good_step = 0;
  b.meta.weights_ready_step = 40;
  EXPECT_NE(Diagnose(b).detail.find("loaded with 40 step(s) done"), std::string::npos);
}

TEST(Bundle, RoundTripsAndGivesTheSameDiagnosis) {
  testing::TempDir dir("bundle");
  Bundle b = HealthyBundle();
  b.targets[1] = 42;
  WriteBundle(dir.File("b"), b);
  const Bundle back = ReadBundle(dir.File("b"));
  EXPECT_TRUE(torch::equal(back.images, b.images));
  EXPECT_TRUE(torch::equal(back.targets, b.targets));
  EXPECT_EQ(back.weights.size(), b.weights.size());
  EXPECT_EQ(back.meta.sources, b.meta.sources);
  EXPECT_EQ(DiagnosisJson(Diagnose(back)), DiagnosisJson(Diagnose(b)));
}

TEST(WeightHistory, KeepsTheBuffersAtTheStepsStartAndTheNormsBeforeTheLastGoodStep) {
  torch::manual_seed(3);
  Hw3Net model(Hw3Options{1, 32, 0.25, 11});
  WeightHistory history;
  history.Ready(5, *model);
  EXPECT_TRUE(history.LastGoodNorms().empty());  // no step passed yet
  const double initial = model->named_parameters()["classifier.5.weight"].norm().item<double>();
  const torch::Tensor mean_before = model->named_buffers()["features.1.running_mean"].clone();
  history.StepStarts();
  model->train();
  model->forward(torch::randn({4, 1, 32, 32}) + 3);  // a training forward pass moves the running statistics
  ASSERT_FALSE(torch::equal(model->named_buffers()["features.1.running_mean"], mean_before));
  EXPECT_TRUE(torch::equal(history.BuffersAtStart().at("features.1.running_mean"), mean_before));
  {
    torch::NoGradGuard no_grad;
    model->named_parameters()["classifier.5.weight"].mul_(10);  // step 6's update
  }
  history.StepPassed(6, *model);
  EXPECT_EQ(history.ready_step(), 5);
  EXPECT_EQ(history.last_good_step(), 6);
  EXPECT_NEAR(history.LastGoodNorms().at("classifier.5.weight"), initial, 1e-4 * initial);
  history.StepPassed(7, *model);  // step 7 started from the weights step 6's update left
  EXPECT_NEAR(history.LastGoodNorms().at("classifier.5.weight"), 10 * initial, 1e-3 * initial);
}

TEST(Bundle, KeepsTheTrainingPrecisionDivisorAndWeightHistory) {
  testing::TempDir dir("bundle");
  Bundle b = HealthyBundle();
  b.meta.precision = "bf16";
  b.meta.global_valid_targets = 24;
  b.meta.weights_ready_step = 3;
  b.meta.last_good_step = 6;
  b.meta.last_good_norms = {{"features.0.weight", 1.5}, {"classifier.5.bias", 0.25}};
  WriteBundle(dir.File("b"), b);
  const BundleMeta back = ReadBundle(dir.File("b")).meta;
  EXPECT_EQ(back.precision, "bf16");
  EXPECT_EQ(back.global_valid_targets, 24);
  EXPECT_TRUE(back.weights_own);
  EXPECT_EQ(back.weights_ready_step, 3);
  EXPECT_EQ(back.last_good_step, 6);
  EXPECT_EQ(back.last_good_norms, b.meta.last_good_norms);
  // A bundle written before these fields existed reads with their defaults.
  WriteFileAtomically(dir.File("b/meta.json"), R"({"kind": "batch_data", "error": "e", "rank": 0, "world": 1,
    "epoch": 0, "step_in_epoch": 1, "global_step": 1, "indices": [], "sources": [], "raw_labels": [],
    "num_classes": 11, "ignore_index": -1, "in_channels": 1, "image_size": 32, "width": 0.25, "device": "cpu",
    "weights_from": "the failing step's own weights", "config": ""})");
  const BundleMeta old = ReadBundle(dir.File("b")).meta;
  EXPECT_EQ(old.precision, "fp32");
  EXPECT_EQ(old.global_valid_targets, 0);
  EXPECT_TRUE(old.last_good_norms.empty());
}

TEST(Bundle, IncompleteOrDamagedBundleIsRefusedNamingTheFolder) {
  testing::TempDir dir("badbundle");
  try {
    ReadBundle(dir.File("missing"));
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  WriteBundle(dir.File("b"), HealthyBundle());
  WriteFileAtomically(dir.File("b/tensors.pt"), "garbage");
  EXPECT_THROW(ReadBundle(dir.File("b")), DataError);
}

TEST(FaultSpec, ParsesAndRejects) {
  const FaultSpec s = ParseFaultSpec("sleep:rank=2:step=4:seconds=1.5");
  EXPECT_EQ(s.kind, FaultSpec::Kind::kSleep);
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.step, 4);
  EXPECT_EQ(s.seconds, 1.5);
  EXPECT_EQ(ParseFaultSpec("kill:step=3:rank=0").kind, FaultSpec::Kind::kKill);
  EXPECT_EQ(ParseFaultSpec("slow:rank=1:step=1:seconds=0.05").kind, FaultSpec::Kind::kSlow);
  EXPECT_EQ(ParseFaultSpec("gpu-fault:rank=1:step=3:host=node7").host, "node7");
  EXPECT_EQ(ParseFaultSpec("nan-weight:rank=0:step=3").kind, FaultSpec::Kind::kNanWeight);
  EXPECT_EQ(ParseFaultSpec("bf16-overflow:rank=0:step=3").kind, FaultSpec::Kind::kBf16Overflow);
  for (const char* bad : {"boom:rank=1:step=1", "nan:rank=1", "nan:rank=x:step=1", "nan:rank=1:step=0", "nan:rank",
                          "slow:rank=0:step=1:seconds=-2", "gpu-fault:rank=0:step=1:host="}) {
    EXPECT_THROW(ParseFaultSpec(bad), ConfigError) << bad;
  }
}

TEST(FaultInjection, PoisonsOnlyTheChosenRankAndStep) {
  FaultInjector injector({ParseFaultSpec("nan:rank=1:step=2")}, 1);
  Batch batch;
  batch.images = torch::zeros({2, 1, 4, 4});
  injector.BeforeStep({0, 1, 5, 1, 0, 2}, batch);
  EXPECT_TRUE(torch::isfinite(batch.images).all().item<bool>());
  injector.BeforeStep({0, 2, 5, 2, 0, 2}, batch);
  EXPECT_FALSE(torch::isfinite(batch.images[0]).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(batch.images[1]).all().item<bool>());
}

TEST(FaultInjection, AGpuFaultFailsTheStepWithTheGpuFaultCodeOnThisHostOnly) {
  Batch batch;
  batch.images = torch::zeros({2, 1, 4, 4});
  FaultInjector here({ParseFaultSpec("gpu-fault:rank=0:step=1:host=" + HostName())}, 0);
  try {
    here.BeforeStep({0, 1, 5, 1, 0, 2}, batch);
    ADD_FAILURE() << "no GPU fault raised";
  } catch (const std::exception& e) {
    EXPECT_EQ(ClassifyStepError(e), ErrorKind::kGpuFault) << e.what();
  }
  FaultInjector elsewhere({ParseFaultSpec("gpu-fault:rank=0:step=1:host=not-" + HostName())}, 0);
  EXPECT_NO_THROW(elsewhere.BeforeStep({0, 1, 5, 1, 0, 2}, batch));
}

TEST(FaultInjection, NanWeightLandsInTheFirstWeightAfterTheUpdateOfTheChosenStep) {
  torch::manual_seed(1);
  Hw3Net model(Hw3Options{1, 32, 0.25, 11});
  FaultInjector injector({ParseFaultSpec("nan-weight:rank=0:step=2")}, 0);
  const torch::Tensor first = model->named_parameters()["features.0.weight"];
  injector.AfterStep({0, 1, 5, 1, 0, 2}, *model);
  EXPECT_TRUE(torch::isfinite(first).all().item<bool>());
  injector.AfterStep({0, 2, 5, 2, 0, 2}, *model);
  EXPECT_EQ(torch::isnan(first).sum().item<int64_t>(), 1);
}

TEST(FaultInjection, Bf16OverflowPlantsAPixelFiniteInFp32AndNotInBf16) {
  FaultInjector injector({ParseFaultSpec("bf16-overflow:rank=0:step=1")}, 0);
  Batch batch;
  batch.images = torch::zeros({2, 1, 32, 32});
  injector.BeforeStep({0, 1, 5, 1, 0, 2}, batch);
  EXPECT_TRUE(torch::isfinite(batch.images).all().item<bool>());
  EXPECT_FALSE(torch::isfinite(batch.images[0].to(torch::kBFloat16)).all().item<bool>());
  EXPECT_TRUE(torch::isfinite(batch.images[1].to(torch::kBFloat16)).all().item<bool>());
}

}  // namespace
}  // namespace trainguard
