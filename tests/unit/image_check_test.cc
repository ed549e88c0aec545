// The dataset doctor's image checks on one rank: every unreadable file of a folder found in one
// pass with training's reason, tiny placeholders flagged as suspicious (and still loadable), the
// same report whatever the thread count, and the report's text and JSON.
#include "trainer/data/image_check.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <tuple>

#include "tests/support/jpeg_files.h"
#include "tests/support/temp_dir.h"
#include "trainer/core/errors.h"
#include "trainer/data/image_folder.h"
#include "trainer/data/jpeg.h"

namespace trainguard {
namespace {

using testing::GrayJpeg;
using testing::TempDir;
using testing::WriteFile;

// Good photos around three unreadable files and two tiny placeholders, at known indices.
struct DoctorFolder {
  TempDir dir{"doctor"};
  std::vector<ImageEntry> entries;
  void Add(const std::string& name, const std::string& bytes) {
    WriteFile(dir.File(name), bytes);
    entries.push_back({dir.File(name), LabelFromFileName(name)});
  }
  DoctorFolder() {
    const std::string good = GrayJpeg(300, 200);
    for (int i = 0; i < 6; ++i) Add("0_good" + std::to_string(i) + ".jpg", good);  // 0-5
    Add("1_truncated.jpg", good.substr(0, good.size() / 2));                       // 6
    Add("2_good.jpg", GrayJpeg(40, 60));                                           // 7
    Add("3_empty.jpg", "");                                                        // 8
    Add("4_text.jpg", "this is a text file, not a jpeg\n");                        // 9
    Add("5_one.jpg", GrayJpeg(1, 1));                                              // 10
    Add("6_four.jpg", GrayJpeg(4, 4));                                             // 11
    Add("7_good.jpg", GrayJpeg(8, 8));                                             // 12: not below 8
  }
  std::vector<int64_t> All() const {
    std::vector<int64_t> all(entries.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
    return all;
  }
};

ImageCheckOptions Threads(int threads) {
  ImageCheckOptions o;
  o.threads = threads;
  return o;
}

bool SameProblems(const ImageCheckReport& a, const ImageCheckReport& b) {
  if (a.problems.size() != b.problems.size()) return false;
  for (size_t i = 0; i < a.problems.size(); ++i) {
    const auto &p = a.problems[i], &q = b.problems[i];
    if (p.index != q.index || p.path != q.path || p.reason != q.reason || p.unreadable != q.unreadable) return false;
  }
  return a.checked == b.checked && a.unreadable == b.unreadable && a.suspicious == b.suspicious;
}

TEST(ImageCheck, FindsEveryUnreadableFileAndEveryPlaceholderInOnePass) {
  DoctorFolder f;
  SoloControlPlane solo;
  const ImageCheckReport r = CheckImages(solo, f.entries, f.All(), Threads(1));
  EXPECT_EQ(r.checked, 13);
  EXPECT_EQ(r.unreadable, 3);
  EXPECT_EQ(r.suspicious, 2);
  EXPECT_GE(r.seconds, 0.0);
  ASSERT_EQ(r.problems.size(), 5u);
  const std::vector<std::tuple<int64_t, bool, std::string>> expected{{6, true, "truncated (Premature end"},
                                                                     {8, true, "the file is empty"},
                                                                     {9, true, "not a JPEG ("},
                                                                     {10, false, "1x1, smaller than 8 pixels"},
                                                                     {11, false, "4x4, smaller than 8 pixels"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const auto& [index, unreadable, reason] = expected[i];
    const ImageProblem& p = r.problems[i];
    EXPECT_EQ(p.index, index);
    EXPECT_EQ(p.path, f.entries[static_cast<size_t>(index)].path);
    EXPECT_EQ(p.unreadable, unreadable) << p.path;
    EXPECT_EQ(p.reason.rfind(reason, 0), 0u) << p.path << ": " << p.reason;
  }
}

TEST(ImageCheck, UnreadableReasonsAreTheOnesTrainingGives) {
  DoctorFolder f;
  SoloControlPlane solo;
  ImageFolderOptions o;
  o.image_size = 32;
  const ImageFolderDataset ds(f.entries, o);
  for (const ImageProblem& p : CheckImages(solo, f.entries, f.All(), Threads(2)).problems) {
    if (!p.unreadable) continue;
    try {
      ds.Images({p.index}, {});
      ADD_FAILURE() << "training read " << p.path;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(p.path + ": " + p.reason + ";"), std::string::npos) << e.what();
    }
  }
}

TEST(ImageCheck, MissingFileIsUnreadableWithTheErrno) {
  DoctorFolder f;
  f.entries.push_back({f.dir.File("8_gone.jpg"), LabelFromFileName("8_gone.jpg")});
  SoloControlPlane solo;
  const ImageCheckReport r = CheckImages(solo, f.entries, {13}, Threads(1));
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_TRUE(r.problems[0].unreadable);
  EXPECT_NE(r.problems[0].reason.find("No such file"), std::string::npos) << r.problems[0].reason;
}

TEST(ImageCheck, ReportIsTheSameWithOneAndWithFourThreads) {
  DoctorFolder f;
  SoloControlPlane solo;
  auto shard = f.All();
  std::reverse(shard.begin(), shard.end());
  shard.push_back(6);  // a duplicate (padding) is checked once
  const ImageCheckReport one = CheckImages(solo, f.entries, shard, Threads(1));
  const ImageCheckReport four = CheckImages(solo, f.entries, shard, Threads(4));
  EXPECT_EQ(one.checked, 13);
  EXPECT_TRUE(SameProblems(one, four)) << FormatImageReport(one) << "\nvs\n" << FormatImageReport(four);
  EXPECT_EQ(FormatImageReport(one).substr(FormatImageReport(one).find('\n')),
            FormatImageReport(four).substr(FormatImageReport(four).find('\n')))
      << "the same text but for the timing";
}

TEST(ImageCheck, ListsAtMostMaxListedButCountsEverything) {
  DoctorFolder f;
  SoloControlPlane solo;
  ImageCheckOptions o = Threads(3);
  o.max_listed = 2;
  const ImageCheckReport r = CheckImages(solo, f.entries, f.All(), o);
  EXPECT_EQ(r.unreadable, 3);
  EXPECT_EQ(r.suspicious, 2);
  ASSERT_EQ(r.problems.size(), 2u);
  EXPECT_EQ(r.problems[0].index, 6);
  EXPECT_EQ(r.problems[1].index, 8);
  EXPECT_NE(FormatImageReport(r).find("3 more not listed"), std::string::npos) << FormatImageReport(r);
}

TEST(ImageCheck, BadOptionsThrowInsteadOfCheckingNothing) {
  DoctorFolder f;
  SoloControlPlane solo;
  EXPECT_THROW(CheckImages(solo, f.entries, f.All(), Threads(0)), ConfigError);
  EXPECT_THROW(CheckImages(solo, f.entries, {99}, Threads(1)), DataError);
}

TEST(ImageCheck, FormatNamesEachFileAndSaysWhatToDo) {
  DoctorFolder f;
  SoloControlPlane solo;
  const ImageCheckReport r = CheckImages(solo, f.entries, f.All(), Threads(2));
  const std::string text = FormatImageReport(r);
  EXPECT_NE(text.find("13 images checked"), std::string::npos) << text;
  EXPECT_NE(text.find("3 unreadable, 2 suspicious"), std::string::npos) << text;
  EXPECT_NE(text.find("unreadable image " + f.entries[8].path + ": the file is empty\n"), std::string::npos) << text;
  EXPECT_NE(
      text.find("suspicious image " + f.entries[11].path + ": 4x4, smaller than 8 pixels on a side (a placeholder?)\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("--unreadable skip"), std::string::npos) << text;

  const nlohmann::json j = ImageReportJson(r);
  EXPECT_EQ(j["checked"], 13);
  EXPECT_EQ(j["unreadable"], 3);
  EXPECT_EQ(j["suspicious"], 2);
  ASSERT_EQ(j["problems"].size(), 5u);
  EXPECT_EQ(j["problems"][0]["index"], 6);
  EXPECT_EQ(j["problems"][0]["kind"], "unreadable");
  EXPECT_EQ(j["problems"][4]["kind"], "suspicious");
  EXPECT_EQ(j["problems"][4]["path"], f.entries[11].path);

  const ImageCheckReport clean = CheckImages(solo, f.entries, {0, 1, 7}, Threads(2));
  EXPECT_EQ(clean.problems.size(), 0u);
  EXPECT_NE(FormatImageReport(clean).find("nothing to do"), std::string::npos) << FormatImageReport(clean);
}

TEST(ImageCheck, TinyJpegsLoadInTrainingAsFiniteImagesOfTheModelSize) {
  DoctorFolder f;
  ImageFolderOptions o;
  o.image_size = 32;
  const ImageFolderDataset ds(f.entries, o);
  for (const int64_t augmented_epoch : {int64_t{-1}, int64_t{0}}) {
    const torch::Tensor x = ds.Images({10, 11}, {augmented_epoch}).images;
    EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
    EXPECT_TRUE(torch::isfinite(x).all().item<bool>());
  }
  // A 1x1 image is one colour: resized up bilinearly, every pixel of each channel keeps it.
  const torch::Tensor one = ds.Images({10}, {}).images[0];
  EXPECT_LT((one.amax({1, 2}) - one.amin({1, 2})).abs().max().item<double>(), 1e-5) << "each channel is flat";
}

}  // namespace
}  // namespace trainguard
