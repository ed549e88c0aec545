// Checkpoints: round trip (a resume on another world size included), and refusal (with the
// file named) of truncated, corrupted, foreign and incompatible files.
#include "trainer/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
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

// The shape of Fixture's model, as a synthetic-data run records it.
const ModelShape kModel{"synthetic", 1, 32, 10, 0.25, "fp32"};

TEST(Checkpoint, ModelShapeIsRecordedAndAnOlderFileHasNone) {
  Fixture a;
  const std::string path = TempPath("model");
  RunShape shape = kShape;
  shape.model = kModel;
  SaveCheckpoint(path, *a.net, a.adam, {}, shape);
  const std::optional<ModelShape> read = ReadModelShape(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, kModel);
  EXPECT_EQ(ModelShapeText(*read), "width 0.25, 10 classes, 32x32x1 input (synthetic), trained in fp32");
  WriteOldCheckpoint(path, a, {}, kShape);
  EXPECT_FALSE(ReadModelShape(path).has_value()) << "a file written before the record has none";
  Fixture b;
  RunShape resumed = kShape;
  resumed.model = kModel;
  LoadCheckpoint(path, *b.net, b.adam, resumed);     // and resumes as before, without the check
  SaveCheckpoint(path, *a.net, a.adam, {}, kShape);  // a writer that does not know the model
  EXPECT_FALSE(ReadModelShape(path).has_value());
  try {
    ReadModelShape(TempPath("absent"));
    ADD_FAILURE() << "a missing file must be refused";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(TempPath("absent")), std::string::npos) << e.what();
  }
  fs::remove(path);
}

TEST(Checkpoint, ResumeRefusesAnotherModelNamingTheSettingButNotAnotherPrecision) {
  Fixture a;
  const std::string path = TempPath("resume_model");
  RunShape shape = kShape;
  shape.model = kModel;
  SaveCheckpoint(path, *a.net, a.adam, {}, shape);
  const std::vector<std::pair<std::function<void(ModelShape&)>, std::string>> cases{
      {[](ModelShape& m) { m.width = 0.5; }, "trained with --width 0.25, this run has --width 0.5"},
      {[](ModelShape& m) { m.num_classes = 11; }, "trained with --num-classes 10, this run has --num-classes 11"},
      {[](ModelShape& m) { m.image_size = 64; }, "trained with --image-size 32, this run has --image-size 64"},
      {[](ModelShape& m) { m.dataset = "folder"; }, "trained with --dataset synthetic, this run has --dataset folder"},
  };
  for (const auto& [change, reason] : cases) {
    RunShape other = shape;
    change(other.model);
    ExpectRefused(path, reason, other);
  }
  // The record is checked before the weights: the message names the setting, not a tensor.
  // (A wider model's tensors would be refused too, with less to go on.)
  RunShape bf16 = shape;
  bf16.model.precision = "bf16";
  Fixture b;
  EXPECT_NO_THROW(LoadCheckpoint(path, *b.net, b.adam, bf16)) << "a resume may change the precision";
  fs::remove(path);
}

// Where each setting of a predict command came from, as the launcher reports it.
std::function<std::string(const std::string&)> Given(std::map<std::string, std::string> given) {
  return [given](const std::string& name) {
    const auto it = given.find(name);
    return it == given.end() ? std::string() : it->second;
  };
}

TEST(Checkpoint, PredictTakesTheRecordedModelAndRefusesAContradictionNamingBoth) {
  const ModelShape folder{"folder", 3, 64, 11, 0.25, "bf16"};
  TrainConfig config;  // every setting at its default
  TakeModelShape(folder, "run.ckpt", Given({}), config);
  EXPECT_EQ(config.dataset, "folder");
  EXPECT_EQ(config.image_size, 64);
  EXPECT_EQ(config.num_classes, 11);
  EXPECT_EQ(config.width, 0.25);
  EXPECT_EQ(config.precision, "bf16");
  // The same values given again are no contradiction.
  TrainConfig same;
  same.width = 0.25;
  same.dataset = "folder";
  EXPECT_NO_THROW(TakeModelShape(folder, "run.ckpt", Given({{"width", "--width"}, {"dataset", "--dataset"}}), same));
  auto refusal = [&](TrainConfig c, const std::map<std::string, std::string>& given) {
    try {
      TakeModelShape(folder, "run.ckpt", Given(given), c);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  TrainConfig wide;
  wide.width = 0.5;
  EXPECT_EQ(refusal(wide, {{"width", "--width"}}),
            "--width 0.5 contradicts the checkpoint run.ckpt, trained with width 0.25: drop --width (predict takes "
            "the model's shape from its checkpoint)");
  EXPECT_NE(refusal(wide, {{"width", "TRAINGUARD_WIDTH"}})
                .find("TRAINGUARD_WIDTH=0.5 contradicts the checkpoint run.ckpt, trained with width 0.25: unset "
                      "TRAINGUARD_WIDTH"),
            std::string::npos);
  EXPECT_NE(refusal(wide, {{"width", "the --config file"}})
                .find("width = 0.5 in the --config file contradicts the checkpoint run.ckpt, trained with width "
                      "0.25: remove width from the --config file"),
            std::string::npos);
  TrainConfig classes;
  classes.num_classes = 10;
  EXPECT_NE(refusal(classes, {{"num-classes", "--num-classes"}}).find("--num-classes 10 contradicts"),
            std::string::npos);
  TrainConfig size;
  size.image_size = 128;
  EXPECT_NE(refusal(size, {{"image-size", "--image-size"}}).find("trained with image-size 64: drop --image-size"),
            std::string::npos);
  TrainConfig mnist;  // the default dataset, given explicitly
  EXPECT_NE(refusal(mnist, {{"dataset", "--dataset"}}).find("--dataset fashion-mnist contradicts"), std::string::npos);
  // A width that was not given is taken from the checkpoint whatever its default.
  EXPECT_EQ(refusal(wide, {}), "no error");
}

}  // namespace
}  // namespace trainguard
