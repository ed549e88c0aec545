// Fault diagnosis on bundles built in the test: the kind of fault, the module, the rows and
// samples it names; bundles that round-trip or are refused; fault-injection specs.
#include <gtest/gtest.h>

#include "diagnostics/faults/diagnose.h"
#include "diagnostics/faults/fault_injection.h"
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

TEST(Diagnose, HealthyBatchIsNotReproduced) {
  const Diagnosis d = Diagnose(HealthyBundle());
  EXPECT_EQ(d.fault, "not_reproduced");
  EXPECT_NE(FormatDiagnosis(d).find("not_reproduced"), std::string::npos);
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

}  // namespace
}  // namespace trainguard
