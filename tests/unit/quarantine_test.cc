// The quarantine file: records survive a round trip, a sample is held once, several writers at
// once lose nothing, a bad line is named, and the budget parses counts and percentages.
#include "diagnostics/faults/quarantine.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

class Quarantine : public ::testing::Test {
 protected:
  void SetUp() override { path_ = dir_.File("run.ckpt.quarantine"); }

  static QuarantinedSample Record(int64_t sample, int rank = 0) {
    return {sample, "training/" + std::to_string(sample) + ".jpg", "11", 4, rank, "Target 11 is out of bounds."};
  }

  testing::TempDir dir_{"quarantine"};
  std::string path_;
};

TEST_F(Quarantine, AMissingFileHoldsNothing) { EXPECT_TRUE(ReadQuarantine(path_).empty()); }

TEST_F(Quarantine, RecordsSurviveARoundTripAndASampleIsHeldOnce) {
  AppendQuarantine(path_, {Record(7), Record(3)});
  const auto records = AppendQuarantine(path_, {Record(3, 1), Record(12, 1)}).records;
  ASSERT_EQ(records.size(), 3u);
  const auto back = ReadQuarantine(path_);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0].sample, 7);
  EXPECT_EQ(back[1].rank, 0);  // the first record of sample 3 stays
  EXPECT_EQ(back[2].sample, 12);
  EXPECT_EQ(back[2].file, "training/12.jpg");
  EXPECT_EQ(back[2].label, "11");
  EXPECT_EQ(back[2].step, 4);
  EXPECT_EQ(back[2].error, "Target 11 is out of bounds.");
  EXPECT_EQ(QuarantinedIndices(back), (std::vector<int64_t>{3, 7, 12}));
}

TEST_F(Quarantine, WritersAtOnceLoseNoRecord) {
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w) {
    writers.emplace_back([this, w] {
      for (int k = 0; k < 10; ++k) AppendQuarantine(path_, {Record(w * 100 + k, w)});
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_EQ(ReadQuarantine(path_).size(), 40u);
}

TEST_F(Quarantine, NothingIsAddedPastTheLimit) {
  AppendQuarantine(path_, {Record(1), Record(2)}, 3);
  const QuarantineAppend over = AppendQuarantine(path_, {Record(2), Record(3), Record(4)}, 3);
  EXPECT_TRUE(over.over_budget);
  EXPECT_EQ(ReadQuarantine(path_).size(), 2u);
  const QuarantineAppend fits = AppendQuarantine(path_, {Record(2), Record(3)}, 3);
  EXPECT_FALSE(fits.over_budget);
  EXPECT_EQ(fits.records.size(), 3u);
}

TEST_F(Quarantine, ABadLineIsNamedWithItsNumber) {
  AppendQuarantine(path_, {Record(1)});
  std::ofstream(path_, std::ios::app) << "{\"sample\": oops\n";
  try {
    ReadQuarantine(path_);
    FAIL() << "a bad line was accepted";
  } catch (const QuarantineError& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
}

TEST_F(Quarantine, AnUnwritableFolderIsNamed) {
  path_ = dir_.File("missing/run.ckpt.quarantine");  // a folder that does not exist stops root too
  try {
    AppendQuarantine(path_, {Record(1)});
    FAIL() << "a quarantine file in a missing folder was accepted";
  } catch (const QuarantineError& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
}

TEST(QuarantineBudgetTest, CountsAndPercentagesOfTheTrainingSet) {
  EXPECT_EQ(QuarantineBudget("10", 1000), 10);
  EXPECT_EQ(QuarantineBudget("0", 1000), 0);
  EXPECT_EQ(QuarantineBudget("1%", 1000), 10);
  EXPECT_EQ(QuarantineBudget("0.1%", 60000), 60);
  EXPECT_EQ(QuarantineBudget("0.1%", 20), 1);  // a percentage allows at least one
  for (const char* bad : {"", "x", "-1", "5 ", "150%", "%", "1.5"}) {
    EXPECT_THROW(QuarantineBudget(bad, 100), ConfigError) << bad;
  }
}

}  // namespace
}  // namespace trainguard
