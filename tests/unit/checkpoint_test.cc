// Checkpoints: round trip (a resume on another world size included), and refusal (with the
// file named) of truncated, corrupted, foreign and incompatible files.
#include "trainer/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

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
  const int64_t before = std::time(nullptr);
  SaveCheckpoint(path, *a.net, a.adam, {1, 5, 12, 640}, kShape);
  const int64_t after = std::time(nullptr);
  const auto expected_random = torch::rand({3});

  Fixture b;
  torch::rand({10});  // move the generator on
  CheckpointOrigin origin;
  const TrainPosition pos = LoadCheckpoint(path, *b.net, b.adam, kShape, &origin);
  EXPECT_EQ(pos.epoch, 1);
  EXPECT_EQ(pos.step_in_epoch, 5);
  EXPECT_EQ(pos.global_step, 12);
  EXPECT_EQ(pos.samples_in_epoch, 640);
  EXPECT_EQ(origin.world, 2);
  EXPECT_EQ(origin.batch_size, 64);
  EXPECT_GE(origin.written_at, before);
  EXPECT_LE(origin.written_at, after);
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

TEST(Checkpoint, OtherWorldSizeLoadsWithItsPositionAndOrigin) {
  Fixture a;
  a.TrainOneStep();
  const std::string path = TempPath("world");
  const RunShape three{3, 64, 1000, 7};
  SaveCheckpoint(path, *a.net, a.adam, {0, 2, 2, 384}, three);
  for (int64_t world : {2, 4}) {
    Fixture b;
    CheckpointOrigin origin;
    const TrainPosition pos = LoadCheckpoint(path, *b.net, b.adam, {world, 64, 1000, 7}, &origin);
    EXPECT_EQ(pos, (TrainPosition{0, 2, 2, 384})) << "world " << world;
    EXPECT_EQ(origin.world, 3);
    auto pa = a.net->parameters(), pb = b.net->parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  }
  fs::remove(path);
}

// A checkpoint as written before `samples_in_epoch` and `written_at` were stored.
void WriteOldCheckpoint(const std::string& path, Fixture& f, const TrainPosition& pos, const RunShape& shape) {
  torch::serialize::OutputArchive archive, model_part, optim_part;
  f.net->save(model_part);
  f.adam.save(optim_part);
  archive.write("model", model_part);
  archive.write("optimizer", optim_part);
  const std::map<std::string, int64_t> scalars{
      {"epoch", pos.epoch},   {"step_in_epoch", pos.step_in_epoch}, {"global_step", pos.global_step},
      {"world", shape.world}, {"batch_size", shape.batch_size},     {"train_samples", shape.train_samples},
      {"seed", shape.seed}};
  for (const auto& [key, value] : scalars) archive.write(key, torch::tensor(value, torch::kInt64));
  archive.write("cpu_rng", at::detail::getDefaultCPUGenerator().get_state());
  std::ostringstream out;
  archive.save_to(out);
  const std::string payload = out.str();
  const uint64_t size = payload.size();
  const auto crc = static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
  std::string file = "TRAINGUARD-CHECKPOINT 1\n";
  file.append(reinterpret_cast<const char*>(&size), 8);
  file.append(reinterpret_cast<const char*>(&crc), 4);
  WriteFileAtomically(path, file + payload);
}

TEST(Checkpoint, OlderFileGivesTheSamplesOfItsStepsOnItsWorld) {
  Fixture a;
  const std::string path = TempPath("old");
  WriteOldCheckpoint(path, a, {1, 5, 20}, {3, 16, 1000, 7});
  Fixture b;
  CheckpointOrigin origin;
  const TrainPosition pos = LoadCheckpoint(path, *b.net, b.adam, {2, 16, 1000, 7}, &origin);
  EXPECT_EQ(pos, (TrainPosition{1, 5, 20, 5 * 16 * 3}));
  EXPECT_EQ(origin.world, 3);
  EXPECT_EQ(origin.written_at, 0) << "unknown";
  fs::remove(path);
}

TEST(Checkpoint, ResumeLineNamesFileTimePositionAndWorlds) {
  const TrainPosition pos{0, 3, 3, 576};
  const CheckpointOrigin origin{3, 64, 1796680212};  // 2026-12-07 21:50:12 UTC
  EXPECT_EQ(ResumeLine("run/ckpt", origin, pos, 3000, 3, 64),
            "resuming from checkpoint run/ckpt written 2026-12-07 21:50:12 UTC: epoch 1, step 3 of the epoch, "
            "global step 3, 576 of 3000 samples of the epoch done, written by 3 ranks");
  EXPECT_EQ(ResumeLine("run/ckpt", origin, pos, 3000, 2, 64),
            "resuming from checkpoint run/ckpt written 2026-12-07 21:50:12 UTC: epoch 1, step 3 of the epoch, "
            "global step 3, 576 of 3000 samples of the epoch done, written by 3 ranks, resumed on 2: the per-rank "
            "batch stays 64, the global batch goes from 192 to 128");
  EXPECT_NE(ResumeLine("ckpt", {3, 64, 0}, pos, 3000, 3, 64).find("written at an unknown time: epoch 1"),
            std::string::npos);
}

std::map<std::string, std::vector<int64_t>> ShapesOf(const torch::nn::Module& model) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& item : model.named_parameters()) shapes[item.key()] = item.value().sizes().vec();
  for (const auto& item : model.named_buffers()) shapes[item.key()] = item.value().sizes().vec();
  return shapes;
}

TEST(Checkpoint, DifferentRunShapeOrModelIsRefused) {
  Fixture a;
  const std::string path = TempPath("shape");
  SaveCheckpoint(path, *a.net, a.adam, {}, kShape);
  ExpectRefused(path, "--batch-size 64, this run has 32", {2, 32, 1000, 7});
  ExpectRefused(path, "--seed 7, this run has 8", {2, 64, 1000, 8});
  ExpectRefused(path, "training samples 1000, this run has 999", {2, 64, 999, 7});
  ExpectRefused(path, "--batch-size 64, this run has 32", {3, 32, 1000, 7});  // the world does not excuse it
  Hw3Net wide(Hw3Options{1, 32, 0.5, 10});
  // The first parameter or buffer (by name) whose shape differs between the widths is named.
  const auto narrow_shapes = ShapesOf(*a.net), wide_shapes = ShapesOf(*wide);
  std::string differing;
  for (const auto& [name, shape] : wide_shapes) {
    if (narrow_shapes.count(name) && narrow_shapes.at(name) != shape) {
      differing = name;
      break;
    }
  }
  ASSERT_FALSE(differing.empty());
  torch::optim::Adam adam(wide->parameters());
  try {
    LoadCheckpoint(path, *wide, adam, kShape);
    ADD_FAILURE() << "a checkpoint of a narrower model must be refused";
  } catch (const CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find(differing + " has shape "), std::string::npos) << what;
    EXPECT_NE(what.find("--width"), std::string::npos) << what;
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
