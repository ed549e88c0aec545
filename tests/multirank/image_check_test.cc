// The dataset doctor's image checks under mpirun (2 and 3 ranks): unreadable files and tiny
// placeholders spread over different ranks' shards are all found, and every rank returns the
// same merged report.
#include "trainer/data/image_check.h"

#include <gtest/gtest.h>
#include <mpi.h>

#include <fstream>
#include <memory>

#include "tests/support/jpeg_files.h"
#include "tests/support/temp_dir.h"
#include "trainer/comm/mpi_control_plane.h"
#include "trainer/core/sharding.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

using testing::GrayJpeg;
using testing::WriteFile;

// What the report says, rank-independent, as one string: for comparing ranks.
std::string Fingerprint(const ImageCheckReport& r) {
  std::string s = std::to_string(r.checked) + "/" + std::to_string(r.unreadable) + "/" + std::to_string(r.suspicious);
  for (const auto& p : r.problems) s += "|" + std::to_string(p.index) + p.path + p.reason + (p.unreadable ? "U" : "S");
  return s;
}

TEST(DistImageCheck, BadFilesOnDifferentRanksAreAllInEveryRanksReport) {
  MpiControlPlane control(MPI_COMM_WORLD);
  ASSERT_GE(control.world(), 2);
  // Rank 0 writes the folder; the broadcast of its path is the barrier the others wait at.
  std::unique_ptr<testing::TempDir> dir;
  std::string folder;
  const std::string good = GrayJpeg(120, 90);
  const std::vector<std::pair<std::string, std::string>> files{{"0_a.jpg", good},
                                                               {"1_trunc.jpg", good.substr(0, good.size() / 3)},
                                                               {"2_empty.jpg", ""},
                                                               {"3_text.jpg", "plain text\n"},
                                                               {"4_one.jpg", GrayJpeg(1, 1)},
                                                               {"5_b.jpg", good},
                                                               {"6_four.jpg", GrayJpeg(4, 4)},
                                                               {"7_c.jpg", good},
                                                               {"8_d.jpg", good},
                                                               {"9_trunc.jpg", good.substr(0, good.size() / 2)},
                                                               {"10_e.jpg", good}};
  if (control.rank() == 0) {
    dir = std::make_unique<testing::TempDir>("dist_doctor");
    for (const auto& [name, bytes] : files) WriteFile(dir->File(name), bytes);
    folder = dir->path();
  }
  control.Broadcast(folder, 0);
  std::vector<ImageEntry> entries;
  for (const auto& [name, bytes] : files) entries.push_back({folder + "/" + name, LabelFromFileName(name)});

  // Sample i sits on rank i % world: the bad ones (1, 2, 3, 9; tiny 4, 6) land on several ranks.
  const auto shard = EvalShard(static_cast<int64_t>(entries.size()), control.rank(), control.world());
  ImageCheckOptions options;
  options.threads = 2;
  const ImageCheckReport r = CheckImages(control, entries, shard, options);

  EXPECT_EQ(r.checked, 11);
  EXPECT_EQ(r.unreadable, 4);
  EXPECT_EQ(r.suspicious, 2);
  ASSERT_EQ(r.problems.size(), 6u) << FormatImageReport(r);
  const std::vector<std::pair<int64_t, std::string>> expected{
      {1, "truncated"}, {2, "the file is empty"}, {3, "not a JPEG"}, {4, "1x1"}, {6, "4x4"}, {9, "truncated"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.problems[i].index, expected[i].first);
    EXPECT_EQ(r.problems[i].path, entries[static_cast<size_t>(expected[i].first)].path);
    EXPECT_NE(r.problems[i].reason.find(expected[i].second), std::string::npos) << r.problems[i].reason;
    EXPECT_EQ(r.problems[i].unreadable, expected[i].first != 4 && expected[i].first != 6);
  }
  // Every rank holds the same report (timing included: the slowest rank's).
  const std::string mine = Fingerprint(r) + "|" + std::to_string(r.seconds);
  for (const std::string& other : control.AllGather(mine)) EXPECT_EQ(other, mine);

  // A rank whose shard is empty still takes part and gets the same report.
  const auto only_rank0 = control.rank() == 0 ? std::vector<int64_t>{1, 4} : std::vector<int64_t>{};
  const ImageCheckReport partial = CheckImages(control, entries, only_rank0, options);
  EXPECT_EQ(partial.checked, 2);
  EXPECT_EQ(partial.unreadable, 1);
  EXPECT_EQ(partial.suspicious, 1);
  for (const std::string& other : control.AllGather(Fingerprint(partial))) EXPECT_EQ(other, Fingerprint(partial));
}

TEST(DistImageCheck, BadOptionOnOneRankThrowsOnEveryRank) {
  MpiControlPlane control(MPI_COMM_WORLD);
  ImageCheckOptions options;
  options.threads = control.rank() == control.world() - 1 ? 0 : 1;
  EXPECT_ANY_THROW(CheckImages(control, {}, {}, options)) << "no rank may hang waiting for the one that failed";
}

}  // namespace
}  // namespace trainguard
