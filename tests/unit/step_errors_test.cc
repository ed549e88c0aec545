// The classes of step failures: each real error a step can raise maps to its kind (and so to its
// exit code), and the out-of-memory report names what a user needs to act on it.
#include "trainer/step_errors.h"

#include <gtest/gtest.h>

#include <new>

namespace trainguard {
namespace {

template <class Throw>
ErrorKind KindOfThrown(Throw&& raise) {
  try {
    raise();
  } catch (const std::exception& e) {
    return ClassifyStepError(e);
  }
  ADD_FAILURE() << "nothing was thrown";
  return ErrorKind::kInternal;
}

TEST(StepErrors, AHostAllocationThatFailsIsOutOfMemory) {
  // More than any machine has: Torch's CPU allocator fails and says so.
  EXPECT_EQ(KindOfThrown([] { torch::empty({int64_t{1} << 50}); }), ErrorKind::kOutOfMemory);
  EXPECT_EQ(KindOfThrown([] { throw std::bad_alloc(); }), ErrorKind::kOutOfMemory);
}

TEST(StepErrors, CudaErrorsByCode) {
  const c10::SourceLocation here{__func__, __FILE__, static_cast<uint32_t>(__LINE__)};
  EXPECT_EQ(KindOfThrown([&] { throw c10::OutOfMemoryError(here, "CUDA out of memory"); }), ErrorKind::kOutOfMemory);
  EXPECT_EQ(KindOfThrown([&] { throw c10::AcceleratorError(here, 2, "out of memory"); }), ErrorKind::kOutOfMemory);
  EXPECT_EQ(KindOfThrown([&] { throw c10::AcceleratorError(here, 710, "device-side assert triggered"); }),
            ErrorKind::kDeviceAssert);
  for (int32_t fault : {46, 214, 700, 702, 714, 715, 716, 717, 718, 719}) {
    EXPECT_EQ(KindOfThrown([&] { throw c10::AcceleratorError(here, fault, "a GPU fault"); }), ErrorKind::kGpuFault)
        << "cudaError " << fault;
  }
  EXPECT_EQ(KindOfThrown([&] { throw c10::AcceleratorError(here, 1, "invalid argument"); }), ErrorKind::kInternal);
}

TEST(StepErrors, ATargetOutOfRangeOnTheCpuIsTheBatchsData) {
  const auto logits = torch::zeros({2, 3});
  const auto targets = torch::tensor({0, 3}, torch::kInt64);
  EXPECT_EQ(KindOfThrown([&] { torch::nn::functional::cross_entropy(logits, targets); }), ErrorKind::kBatchData);
  EXPECT_EQ(KindOfThrown([] { throw std::runtime_error("something else"); }), ErrorKind::kInternal);
}

TEST(StepErrors, TheOutOfMemoryReportSaysWhatToChange) {
  TrainConfig config;
  config.batch_size = 512;
  const std::string report =
      OutOfMemoryReport(config, torch::kCPU, 7, torch::zeros({512, 3, 64, 64}), "can't allocate memory");
  EXPECT_NE(report.find("out of host memory in step 7"), std::string::npos) << report;
  EXPECT_NE(report.find("--batch-size 512 per rank of 3x64x64 images, --precision fp32"), std::string::npos) << report;
  EXPECT_NE(report.find("resident "), std::string::npos) << report;
  EXPECT_NE(report.find("try --batch-size 256"), std::string::npos) << report;
  EXPECT_NE(report.find("(can't allocate memory)"), std::string::npos) << report;
}

}  // namespace
}  // namespace trainguard
