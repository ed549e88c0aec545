// Label validation: strict parsing, verdicts, the merge across ranks (simulated as threads),
// each policy, empty shards, ignore indices other than -1, class inference and warnings.
#include <gtest/gtest.h>

#include <mutex>

#include "diagnostics/labels/label_validation.h"
#include "tests/support/label_catalog.h"
#include "tests/support/thread_control_plane.h"
#include "trainer/core/sharding.h"

namespace trainguard {
namespace {

using testing::CyclingLabels;
using testing::LabelCatalog;
using testing::RunRanks;

TEST(LabelText, ParsesStrictly) {
  EXPECT_EQ(ParseLabelText("-1").value, -1);
  EXPECT_EQ(ParseLabelText("11").value, 11);
  EXPECT_EQ(ParseLabelText("255").value, 255);
  for (const char* bad : {"abc", "3.5", "99999999999999999999", " 3", "3 ", "+3", "0x1", "1e3", "-"}) {
    const RawLabel l = ParseLabelText(bad);
    EXPECT_FALSE(l.value.has_value()) << bad;
    EXPECT_EQ(l.text, bad);
  }
  EXPECT_FALSE(ParseLabelText("").value.has_value());
}

TEST(LabelVerdict, ClassifiesEveryKind) {
  auto kind = [](const char* text, int64_t ignore) { return ClassifyLabel(ParseLabelText(text), 11, ignore); };
  EXPECT_EQ(kind("0", -1), LabelKind::kValid);
  EXPECT_EQ(kind("10", -1), LabelKind::kValid);
  EXPECT_EQ(kind("11", -1), LabelKind::kTooLarge);
  EXPECT_EQ(kind("-1", -1), LabelKind::kIgnored);
  EXPECT_EQ(kind("-1", -100), LabelKind::kNegative);
  EXPECT_EQ(kind("-100", -100), LabelKind::kIgnored);
  EXPECT_EQ(kind("255", 255), LabelKind::kIgnored);
  EXPECT_EQ(kind("255", -1), LabelKind::kTooLarge);
  EXPECT_EQ(kind("abc", -1), LabelKind::kUnparsable);
  EXPECT_EQ(kind("", -1), LabelKind::kIgnored) << "unlabelled is never an error";
}

struct RankResult {
  std::string report;  // FormatReport, to compare ranks
  bool failed = false;
  size_t shard_size = 0;
  std::vector<int64_t> shard, ignored;
};

// Runs ValidateLabels on `world` threads over the epoch-0 shards of `catalog`.
std::vector<RankResult> Validate(const LabelCatalog& catalog, int world, const LabelCheckOptions& options) {
  std::vector<RankResult> results(static_cast<size_t>(world));
  RunRanks(world, [&](ControlPlane& c) {
    const auto shard = TrainShard({catalog.size(), c.rank(), c.world(), 3, 0, true, {}});
    const auto v = ValidateLabels(c, catalog, shard, UniqueShardEntries(catalog.size(), c.rank(), c.world()), options);
    results[static_cast<size_t>(c.rank())] = {FormatReport(v.report), v.report.failed, v.shard.size(), v.shard,
                                              v.ignored};
  });
  return results;
}

LabelCheckOptions Options(LabelAction action, int64_t classes = 11, int64_t ignore = -1) {
  LabelCheckOptions o;
  o.policy = {action, action, action};
  o.num_classes = classes;
  o.ignore_index = ignore;
  o.max_offenders = 3;
  return o;
}

TEST(LabelValidation, BadLabelOnOneRankGivesEveryRankTheSameFailingReport) {
  auto labels = CyclingLabels(50, 11);
  labels[37] = "11";
  const LabelCatalog catalog(labels);
  for (int world : {1, 2, 3}) {
    const auto r = Validate(catalog, world, Options(LabelAction::kFail));
    for (const auto& rank : r) {
      EXPECT_TRUE(rank.failed);
      EXPECT_EQ(rank.report, r[0].report) << "world " << world;
    }
    EXPECT_NE(r[0].report.find("too_large label '11' at sample 37"), std::string::npos) << r[0].report;
    EXPECT_NE(r[0].report.find("file_37.jpg"), std::string::npos);
    EXPECT_NE(r[0].report.find("1 >= 11 classes"), std::string::npos) << r[0].report;
  }
}

TEST(LabelValidation, CountsCoverTheDatasetOnceDespitePadding) {
  auto labels = CyclingLabels(10, 5);
  labels[9] = "-7";
  for (int world : {3, 4, 7}) {  // 10 samples do not divide: the sampler pads
    const auto r = Validate(LabelCatalog(labels), world, Options(LabelAction::kIgnore, 5));
    EXPECT_NE(r[0].report.find("labels: 9 valid, 0 ignored (unlabelled or -1), 1 negative"), std::string::npos)
        << "world " << world << "\n"
        << r[0].report;
  }
}

TEST(LabelValidation, IgnorePolicyKeepsTheSampleWithAnIgnoredTarget) {
  auto labels = CyclingLabels(30, 11);
  labels[4] = "-3";
  labels[5] = "abc";
  const auto r = Validate(LabelCatalog(labels), 2, Options(LabelAction::kIgnore));
  std::vector<int64_t> ignored;
  for (const auto& rank : r) {
    EXPECT_FALSE(rank.failed);
    EXPECT_EQ(rank.shard_size, 15u);
    ignored.insert(ignored.end(), rank.ignored.begin(), rank.ignored.end());
  }
  std::sort(ignored.begin(), ignored.end());
  EXPECT_EQ(ignored, (std::vector<int64_t>{4, 5}));
}

TEST(LabelValidation, DropPolicyRemovesBadSamplesAndKeepsShardSizesEqual) {
  auto labels = CyclingLabels(31, 11);
  for (int64_t i : {0, 3, 6, 9, 12}) labels[static_cast<size_t>(i)] = "99";
  for (int world : {2, 3}) {
    const auto r = Validate(LabelCatalog(labels), world, Options(LabelAction::kDrop));
    for (const auto& rank : r) {
      EXPECT_FALSE(rank.failed);
      EXPECT_EQ(rank.shard_size, r[0].shard_size) << "equal steps on every rank";
      for (int64_t i : rank.shard) EXPECT_NE(labels[static_cast<size_t>(i)], "99") << "dropped sample " << i << " kept";
    }
  }
}

TEST(LabelValidation, RankWithEveryLabelDroppedStillRunsTheSameSteps) {
  // Two ranks, unshuffled view: make every sample rank 1 sees bad by making all odd-position
  // samples of its shard bad: simplest is all labels bad but one.
  auto labels = std::vector<std::string>(8, "-2");
  labels[0] = "1";
  const auto r = Validate(LabelCatalog(labels), 2, Options(LabelAction::kDrop, 3));
  ASSERT_EQ(r[0].shard_size, r[1].shard_size);
  for (const auto& rank : r) {
    EXPECT_FALSE(rank.failed);
    const bool holds_good = std::find(rank.shard.begin(), rank.shard.end(), 0) != rank.shard.end();
    if (!holds_good) {
      EXPECT_EQ(rank.ignored.size(), std::set<int64_t>(rank.shard.begin(), rank.shard.end()).size())
          << "a rank with nothing kept trains on ignored targets only";
    }
  }
}

TEST(LabelValidation, EverythingDroppedFails) {
  const auto r = Validate(LabelCatalog(std::vector<std::string>(6, "x")), 3, Options(LabelAction::kDrop));
  for (const auto& rank : r) EXPECT_TRUE(rank.failed);
  EXPECT_NE(r[0].report.find("every sample was dropped"), std::string::npos) << r[0].report;
}

TEST(LabelValidation, EmptyShardsWhenFewerSamplesThanRanks) {
  const auto r = Validate(LabelCatalog({"1", "12"}), 3, Options(LabelAction::kFail));
  for (const auto& rank : r) {
    EXPECT_TRUE(rank.failed);
    EXPECT_EQ(rank.report, r[0].report);
  }
  EXPECT_NE(r[0].report.find("labels: 1 valid"), std::string::npos) << r[0].report;
}

TEST(LabelValidation, OtherIgnoreIndicesAreUnlabelledNotErrors) {
  auto labels = CyclingLabels(20, 11);
  labels[2] = "255";
  labels[3] = "-100";
  auto r = Validate(LabelCatalog(labels), 2, Options(LabelAction::kFail, 11, 255));
  EXPECT_TRUE(r[0].failed) << "-100 is negative when the ignore index is 255";
  EXPECT_NE(r[0].report.find("1 ignored (unlabelled or 255)"), std::string::npos) << r[0].report;
  labels[2] = "7";
  r = Validate(LabelCatalog(labels), 3, Options(LabelAction::kFail, 11, -100));
  EXPECT_FALSE(r[0].failed) << r[0].report;
}

TEST(LabelValidation, InfersClassesAndWarnsAboutOneBasedLabels) {
  std::vector<std::string> labels;
  for (int i = 0; i < 40; ++i) labels.push_back(std::to_string(1 + i % 11));  // 1..11
  const auto r = Validate(LabelCatalog(labels), 2, Options(LabelAction::kFail, 0));
  EXPECT_FALSE(r[0].failed);
  EXPECT_NE(r[0].report.find("(class count inferred from the labels)"), std::string::npos) << r[0].report;
  EXPECT_NE(r[0].report.find(">= 12 classes"), std::string::npos) << r[0].report;
  EXPECT_NE(r[0].report.find("labels may be 1-based"), std::string::npos) << r[0].report;
}

TEST(LabelValidation, WarnsAboutImbalance) {
  std::vector<std::string> labels(100, "0");
  labels[0] = "1";
  const auto r = Validate(LabelCatalog(labels), 2, Options(LabelAction::kFail, 2));
  EXPECT_NE(r[0].report.find("strong class imbalance"), std::string::npos) << r[0].report;
}

TEST(LabelValidation, ListsTheFirstOffendersByIndexWhateverTheShuffle) {
  auto labels = CyclingLabels(60, 11);
  for (int64_t i : {55, 7, 31, 19, 43}) labels[static_cast<size_t>(i)] = "-9";
  const auto r = Validate(LabelCatalog(labels), 3, Options(LabelAction::kFail));  // max_offenders 3
  const auto& text = r[0].report;
  const auto a = text.find("sample 7 "), b = text.find("sample 19 "), c = text.find("sample 31 ");
  ASSERT_NE(a, std::string::npos);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(c, std::string::npos);
  EXPECT_TRUE(a < b && b < c) << text;
  EXPECT_EQ(text.find("sample 43 "), std::string::npos) << "only the first 3 per kind";
}

TEST(LabelReport, JsonCarriesCountsOffendersAndVerdict) {
  auto labels = CyclingLabels(12, 4);
  labels[5] = "abc";
  LabelCheckOptions o = Options(LabelAction::kFail, 4);
  std::string json;
  RunRanks(1, [&](ControlPlane& c) {
    const auto shard = TrainShard({12, 0, 1, 0, 0, false, {}});
    json = ReportJson(ValidateLabels(c, LabelCatalog(labels), shard, 12, o).report, o.policy);
  });
  EXPECT_NE(json.find("\"verdict\": \"fail\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"unparsable\": 1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"source\": \"file_5.jpg\""), std::string::npos) << json;
}

}  // namespace
}  // namespace trainguard
