// Checkpoints across ranks under mpirun: stop + resume matches an uninterrupted run on every
// rank (a stop at --max-steps, or on request from one rank), ranks hold identical weights, a
// checkpoint of every rank resumes on one rank fewer from the same sample, and a checkpoint that
// cannot be written or read stops every rank with an error instead of leaving some waiting.
#include <gtest/gtest.h>
#include <mpi.h>

#include <map>
#include <sstream>

#include "tests/support/synthetic_config.h"
#include "tests/support/temp_dir.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/comm/mpi_data_plane.h"
#include "trainer/core/atomic_file.h"
#include "trainer/core/errors.h"
#include "trainer/core/sharding.h"
#include "trainer/data/synthetic.h"
#include "trainer/train.h"

namespace trainguard {
namespace {

struct Ranks {
  MpiControlPlane control{MPI_COMM_WORLD};
  MpiDataPlane plane{MPI_COMM_WORLD};
  TrainContext context() { return {control, plane, torch::kCPU, {}}; }
};

TrainConfig Config() {
  TrainConfig c = testing::SyntheticConfig(8, 21);
  c.epochs = 2;
  c.evaluate = false;
  return c;
}

// A checkpoint path in a folder of rank 0's, the same on every rank.
std::string SharedPath(ControlPlane& control, const testing::TempDir* dir) {
  std::string path = control.rank() == 0 ? dir->File("ckpt") : "";
  control.Broadcast(path, 0);
  return path;
}

std::vector<torch::Tensor> Params(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (const auto& p : t.model()->parameters()) out.push_back(p.detach().clone());
  return out;
}

TEST(DistResume, StopAndResumeMatchesUninterruptedOnEveryRank) {
  Ranks ranks;
  auto data = MakeSyntheticDataset({90, 4, {1, 32, 32}, 2, 0.5, {}});
  std::unique_ptr<testing::TempDir> dir;
  if (ranks.control.rank() == 0) dir = std::make_unique<testing::TempDir>("dist_resume");
  const std::string ckpt = SharedPath(ranks.control, dir.get());

  const TrainConfig whole = Config();
  Trainer uninterrupted(whole, *data, nullptr, ranks.context());
  const TrainSummary full = uninterrupted.Run();

  TrainConfig first = Config();
  first.checkpoint = ckpt;
  first.max_steps = 5;
  Trainer part1(first, *data, nullptr, ranks.context());
  part1.Run();

  TrainConfig second = Config();
  second.checkpoint = ckpt;
  second.resume = "yes";
  Trainer part2(second, *data, nullptr, ranks.context());
  const TrainSummary resumed = part2.Run();
  EXPECT_EQ(resumed.end.global_step, full.end.global_step);

  const auto a = Params(uninterrupted), b = Params(part2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;

  // Every rank holds rank 0's weights.
  for (auto& p : b) {
    auto from_root = p.clone();
    ranks.plane.Broadcast(from_root, 0);
    EXPECT_TRUE(torch::equal(p, from_root));
  }
}

// Asks for a stop on one rank only, just before a given step: what a signal to one process does.
class StopBeforeStep final : public StepHooks {
 public:
  StopBeforeStep(std::atomic<bool>& flag, int64_t step, bool here) : flag_(flag), step_(step), here_(here) {}
  void BeforeStep(const StepReport& where, Batch&) override {
    if (here_ && where.global_step == step_) flag_ = true;
  }

 private:
  std::atomic<bool>& flag_;
  int64_t step_;
  bool here_;
};

class CheckpointCounter final : public TrainObserver {
 public:
  void OnCheckpoint(int64_t, double, int64_t bytes) override {
    ++count;
    EXPECT_GT(bytes, 0);
  }
  int count = 0;
};

TEST(DistResume, StopRequestOnOneRankStopsEveryRankAtOneCheckpointAndResumesExactly) {
  Ranks ranks;
  auto data = MakeSyntheticDataset({90, 4, {1, 32, 32}, 2, 0.5, {}});
  std::unique_ptr<testing::TempDir> dir;
  if (ranks.control.rank() == 0) dir = std::make_unique<testing::TempDir>("dist_preempt");
  const std::string ckpt = SharedPath(ranks.control, dir.get());

  Trainer uninterrupted(Config(), *data, nullptr, ranks.context());
  const TrainSummary full = uninterrupted.Run();

  // The last rank is asked to stop before step 4 (mid-epoch); --resume auto finds no file yet.
  TrainConfig first = Config();
  first.checkpoint = ckpt;
  first.resume = "auto";
  std::atomic<bool> stop{false};
  StopBeforeStep asker(stop, 4, ranks.control.rank() == ranks.control.world() - 1);
  CheckpointCounter checkpoints;
  TrainContext context = ranks.context();
  context.hooks.push_back(&asker);
  context.observers.push_back(&checkpoints);
  context.stop_requested = &stop;
  Trainer part1(first, *data, nullptr, context);
  const TrainSummary stopped = part1.Run();
  EXPECT_TRUE(stopped.preempted);
  EXPECT_EQ(stopped.end.global_step, 4) << "every rank stops after the step in which the request was agreed";
  EXPECT_EQ(stopped.steps_this_run, 4);
  EXPECT_EQ(checkpoints.count, ranks.control.rank() == 0 ? 1 : 0) << "rank 0 writes one checkpoint";

  // The requeued job runs the same command line: --resume auto now finds the checkpoint.
  Trainer part2(first, *data, nullptr, ranks.context());
  const TrainSummary resumed = part2.Run();
  EXPECT_FALSE(resumed.preempted);
  EXPECT_EQ(resumed.steps_this_run, full.steps_this_run - 4);
  const auto a = Params(uninterrupted), b = Params(part2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i])) << "parameter " << i;
}

// Records the dataset indices of this rank's batches of epoch 1, padding included.
class EpochOneSamples final : public StepHooks {
 public:
  void BeforeStep(const StepReport& where, Batch& batch) override {
    if (where.epoch == 0) indices.insert(indices.end(), batch.indices.begin(), batch.indices.end());
  }
  std::vector<int64_t> indices;
};

// How often each index was trained, over every rank of `control`.
std::map<int64_t, int> CountOverRanks(ControlPlane& control, const std::vector<int64_t>& mine) {
  std::string text;
  for (int64_t i : mine) text += std::to_string(i) + " ";
  std::map<int64_t, int> counts;
  for (const std::string& part : control.AllGather(text)) {
    std::istringstream in(part);
    for (int64_t i = 0; in >> i;) ++counts[i];
  }
  return counts;
}

TEST(DistResume, CheckpointOfEveryRankResumesOnOneFewerFromTheSameSample) {
  Ranks ranks;
  constexpr int64_t kSamples = 90, kBatch = 8, kStop = 2;
  auto data = MakeSyntheticDataset({kSamples, 4, {1, 32, 32}, 2, 0.5, {}});
  std::unique_ptr<testing::TempDir> dir;
  if (ranks.control.rank() == 0) dir = std::make_unique<testing::TempDir>("dist_reshape");
  const int before = ranks.control.world();
  TrainConfig first = Config();
  first.checkpoint = SharedPath(ranks.control, dir.get());
  first.max_steps = kStop;
  EpochOneSamples trained_before;
  TrainContext context = ranks.context();
  context.hooks.push_back(&trained_before);
  Trainer(first, *data, nullptr, context).Run();
  const std::map<int64_t, int> counts_before = CountOverRanks(ranks.control, trained_before.indices);

  // The last rank sits the resume out.
  const bool resumes = ranks.control.rank() < before - 1;
  MPI_Comm fewer = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, resumes ? 0 : MPI_UNDEFINED, ranks.control.rank(), &fewer);
  if (resumes) {
    const int after = before - 1;
    MpiControlPlane control(fewer);
    MpiDataPlane plane(fewer);
    TrainConfig second = first;
    second.max_steps = 0;
    second.resume = "yes";
    EpochOneSamples trained_after;
    Trainer part2(second, *data, nullptr, {control, plane, torch::kCPU, {}, {&trained_after}});
    const TrainSummary resumed = part2.Run();
    const int64_t start = kStop * kBatch * before;
    const int64_t rest = StepsPerEpoch(TrainShardSize(kSamples - start, after), kBatch);
    EXPECT_EQ(resumed.steps_this_run, rest + StepsPerEpoch(TrainShardSize(kSamples, after), kBatch));
    EXPECT_EQ(resumed.end.global_step, kStop + resumed.steps_this_run);
    std::map<int64_t, int> counts = CountOverRanks(control, trained_after.indices);
    for (const auto& [index, n] : counts_before) counts[index] += n;
    EXPECT_EQ(static_cast<int64_t>(counts.size()), kSamples) << "every sample of epoch 1 is trained";
    int64_t repeats = 0;
    for (const auto& [index, n] : counts) repeats += n - 1;
    EXPECT_EQ(repeats, TrainShardSize(kSamples - start, after) * after - (kSamples - start))
        << "only the padding of the resumed shard repeats a sample";
    MPI_Comm_free(&fewer);
  }
  SumAcrossRanks(ranks.control, 0);  // the last rank waits for the others
}

TEST(DistResume, UnwritableCheckpointStopsEveryRank) {
  Ranks ranks;
  auto data = MakeSyntheticDataset({40, 4, {1, 32, 32}, 2, 0.5, {}});
  TrainConfig c = Config();
  c.checkpoint = "/nonexistent-folder/ckpt";
  c.max_steps = 2;
  Trainer trainer(c, *data, nullptr, ranks.context());
  try {
    trainer.Run();
    FAIL() << "expected an error on every rank";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(ranks.control.rank(), 0) << "only the writing rank reports its own error";
    EXPECT_NE(std::string(e.what()).find("/nonexistent-folder/ckpt"), std::string::npos) << e.what();
  } catch (const PeerError& e) {
    EXPECT_NE(ranks.control.rank(), 0);
    EXPECT_NE(std::string(e.what()).find("rank 0 failed"), std::string::npos) << e.what();
  }
}

TEST(DistResume, CorruptedCheckpointIsRefusedOnEveryRank) {
  Ranks ranks;
  auto data = MakeSyntheticDataset({40, 4, {1, 32, 32}, 2, 0.5, {}});
  std::unique_ptr<testing::TempDir> dir;
  if (ranks.control.rank() == 0) dir = std::make_unique<testing::TempDir>("dist_corrupt");
  TrainConfig c = Config();
  c.checkpoint = SharedPath(ranks.control, dir.get());
  c.max_steps = 2;
  Trainer(c, *data, nullptr, ranks.context()).Run();
  if (ranks.control.rank() == 0) {
    std::string bytes = ReadWholeFile(c.checkpoint);
    bytes[bytes.size() - 100] ^= 1;
    WriteFileAtomically(c.checkpoint, bytes);
  }
  SumAcrossRanks(ranks.control, 0);  // everyone waits for the corruption
  c.resume = "yes";
  try {
    Trainer resumed(c, *data, nullptr, ranks.context());
    FAIL() << "a corrupted checkpoint must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checksum"), std::string::npos) << e.what();
  }
}

// Rank 0 alone reads the file (LoadCheckpointShared): when it cannot, every rank stops with an
// error that names the file.
TEST(DistResume, ACheckpointRankZeroCannotReadStopsEveryRankNamingTheFile) {
  Ranks ranks;
  auto data = MakeSyntheticDataset({40, 4, {1, 32, 32}, 2, 0.5, {}});
  TrainConfig c = Config();
  c.checkpoint = "/nonexistent-folder/ckpt-to-resume";
  c.resume = "yes";
  try {
    Trainer resumed(c, *data, nullptr, ranks.context());
    FAIL() << "a checkpoint that cannot be read must stop every rank";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(ranks.control.rank(), 0);
    EXPECT_NE(std::string(e.what()).find("/nonexistent-folder/ckpt-to-resume"), std::string::npos) << e.what();
  } catch (const PeerError& e) {
    EXPECT_NE(ranks.control.rank(), 0);
    EXPECT_EQ(e.origin(), ErrorKind::kCheckpoint);
    EXPECT_NE(std::string(e.what()).find("rank 0 failed"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/nonexistent-folder/ckpt-to-resume"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace trainguard
