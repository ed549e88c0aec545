// Checkpoints: round trip, and refusal (with the file named) of truncated, corrupted, foreign
// and incompatible files.
#include "trainer/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {
namespace {

namespace fs = std::filesystem;

struct Fixture {
  Hw3Net net{Hw3Options{1, 32, 0.25, 10}};
  torch::optim::Adam adam{net->parameters(), torch::optim::AdamOptions(1e-3)};
  void TrainOneStep() {
    adam.zero_grad();
    net->forward(torch::randn({2, 1, 32, 32})).sum().backward();
    adam.step();
  }
};

std::string TempPath(const std::string& name) {
  return (fs::temp_directory_path() / ("tg_ckpt_" + name + "_" + std::to_string(getpid()))).string();
}

const RunShape kShape{2, 64, 1000, 7};

void ExpectRefused(const std::string& path, const std::string& reason, const RunShape& shape = kShape) {
  Fixture f;
  try {
    LoadCheckpoint(path, *f.net, f.adam, shape);
    FAIL() << "expected CheckpointError for " << reason;
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, RoundTripRestoresWeightsOptimizerPositionAndRng) {
  Fixture a;
  a.TrainOneStep();
  const std::string path = TempPath("rt");
  SaveCheckpoint(path, *a.net, a.adam, {1, 5, 12}, kShape);
  const auto expected_random = torch::rand({3});

  Fixture b;
  torch::rand({10});  // move the generator on
  const TrainPosition pos = LoadCheckpoint(path, *b.net, b.adam, kShape);
  EXPECT_EQ(pos.epoch, 1);
  EXPECT_EQ(pos.step_in_epoch, 5);
  EXPECT_EQ(pos.global_step, 12);
  EXPECT_TRUE(torch::equal(torch::rand({3}), expected_random)) << "generator state restored";
  auto pa = a.net->parameters(), pb = b.net->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  // The same next step from both proves the Adam moments came back too.
  torch::manual_seed(5);
  a.TrainOneStep();
  torch::manual_seed(5);
  b.TrainOneStep();
  pa = a.net->parameters(), pb = b.net->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  fs::remove(path);
}

TEST(Checkpoint, TruncatedFileIsRefused) {
  Fixture a;
  const std::string path = TempPath("trunc");
  SaveCheckpoint(path, *a.net, a.adam, {}, kShape);
  fs::resize_file(path, fs::file_size(path) / 2);
  ExpectRefused(path, "truncated");
  fs::resize_file(path, 10);
  ExpectRefused(path, "not a trainguard checkpoint");
  fs::remove(path);
}

TEST(Checkpoint, FlippedByteIsRefusedByTheChecksum) {
  Fixture a;
  const std::string path = TempPath("flip");
  SaveCheckpoint(path, *a.net, a.adam, {}, kShape);
  std::string bytes = ReadWholeFile(path);
  bytes[bytes.size() / 2] ^= 0x20;
  WriteFileAtomically(path, bytes);
  ExpectRefused(path, "checksum");
  fs::remove(path);
}

TEST(Checkpoint, OtherFileOrMissingFileIsRefused) {
  const std::string path = TempPath("foreign");
  WriteFileAtomically(path, std::string(4096, 'z'));
  ExpectRefused(path, "not a trainguard checkpoint");
  fs::remove(path);
  ExpectRefused(path, "cannot open");
}

TEST(Checkpoint, DifferentRunShapeOrModelIsRefused) {
  Fixture a;
  const std::string path = TempPath("shape");
  SaveCheckpoint(path, *a.net, a.adam, {}, kShape);
  ExpectRefused(path, "world size 2, this run has 3", {3, 64, 1000, 7});
  ExpectRefused(path, "--batch-size", {2, 32, 1000, 7});
  Hw3Net wide(Hw3Options{1, 32, 0.5, 10});
  torch::optim::Adam adam(wide->parameters());
  try {
    LoadCheckpoint(path, *wide, adam, kShape);
    ADD_FAILURE() << "a checkpoint of a narrower model must be refused";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("--width"), std::string::npos) << e.what();
  }
  try {
    Hw3Net fresh_wide(Hw3Options{1, 32, 0.5, 10});  // the failed load above changed `wide`
    LoadModelWeights(path, *fresh_wide);
    ADD_FAILURE() << "prediction must refuse a checkpoint of another width";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  fs::remove(path);
}

}  // namespace
}  // namespace trainguard
