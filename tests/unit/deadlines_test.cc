// Learned deadlines and stragglers named as they start: the pure cores the fault watch and the
// straggler report feed.
#include "diagnostics/faults/deadlines.h"

#include <gtest/gtest.h>

#include "diagnostics/faults/stragglers.h"

namespace trainguard {
namespace {

TEST(Deadlines, TheCeilingHoldsUntilAPhaseIsSeenOftenEnough) {
  Deadlines d(300);
  for (int i = 0; i < 9; ++i) EXPECT_FALSE(d.Record(WaitPhase::kStep, 0.1)) << "step " << i + 1;
  EXPECT_EQ(d.Of(WaitPhase::kStep), 300);
  EXPECT_FALSE(d.Learned(WaitPhase::kStep));
  EXPECT_NE(d.Explain(WaitPhase::kStep).find("not learned yet: 9 of 10 training steps seen"), std::string::npos)
      << d.Explain(WaitPhase::kStep);
  EXPECT_TRUE(d.Record(WaitPhase::kStep, 0.1)) << "the tenth step: learned";
  EXPECT_EQ(d.Of(WaitPhase::kStep), 10) << "3 x 0.1 s is under the 10 s floor";
  EXPECT_TRUE(d.Learned(WaitPhase::kStep));
  EXPECT_EQ(d.Explain(WaitPhase::kStep),
            "10 s (learned: 3x the longest of the last 10 training steps, 0.1 s, at least 10 s; --step-timeout 300 s "
            "caps it)");
  EXPECT_EQ(d.Of(WaitPhase::kEvaluating), 300) << "each phase learns on its own";
}

TEST(Deadlines, SlowFirstStepsKeepTheDeadlineLongUntilTheySlideOut) {
  Deadlines d(300);
  d.Record(WaitPhase::kStep, 20);  // the first step: kernels chosen, caches filled
  for (int i = 0; i < 9; ++i) d.Record(WaitPhase::kStep, 0.1);
  EXPECT_EQ(d.Of(WaitPhase::kStep), 60) << "3 x the slow first step";
  for (size_t i = 0; i < Deadlines::kWindow - 10; ++i) d.Record(WaitPhase::kStep, 0.1);
  EXPECT_EQ(d.Of(WaitPhase::kStep), 60) << "still in the window";
  EXPECT_TRUE(d.Record(WaitPhase::kStep, 0.1)) << "the slow step left the window";
  EXPECT_EQ(d.Of(WaitPhase::kStep), 10);
}

TEST(Deadlines, LongStepsGiveThreeTimesTheLongestAndSmallChangesDoNotMoveIt) {
  Deadlines d(300);
  for (int i = 0; i < 10; ++i) d.Record(WaitPhase::kStep, 8);
  EXPECT_EQ(d.Of(WaitPhase::kStep), 24);
  EXPECT_FALSE(d.Record(WaitPhase::kStep, 9)) << "27 s is within 20 % of 24 s: kept";
  EXPECT_EQ(d.Of(WaitPhase::kStep), 24);
  EXPECT_TRUE(d.Record(WaitPhase::kStep, 12)) << "36 s is not";
  EXPECT_EQ(d.Of(WaitPhase::kStep), 36);
  EXPECT_TRUE(d.Record(WaitPhase::kStep, 200));
  EXPECT_EQ(d.Of(WaitPhase::kStep), 300) << "--step-timeout caps it";
  EXPECT_FALSE(d.Learned(WaitPhase::kStep));
}

TEST(Deadlines, CheckpointsGetAMinuteAndFourTimesTheLongestAfterTwo) {
  Deadlines d(300);
  EXPECT_FALSE(d.Record(WaitPhase::kCheckpointing, 0.5));
  EXPECT_TRUE(d.Record(WaitPhase::kCheckpointing, 20));
  EXPECT_EQ(d.Of(WaitPhase::kCheckpointing), 80);
  Deadlines fast(300);
  fast.Record(WaitPhase::kCheckpointing, 0.5);
  fast.Record(WaitPhase::kCheckpointing, 0.5);
  EXPECT_EQ(fast.Of(WaitPhase::kCheckpointing), 60) << "a slow disk later still has a minute";
}

TEST(Deadlines, PhasesMetAboutOnceARunAreNeverLearned) {
  Deadlines d(300);
  for (int i = 0; i < 50; ++i) {
    d.Record(WaitPhase::kStarting, 0.1);
    d.Record(WaitPhase::kAgreeing, 0.1);
  }
  EXPECT_EQ(d.Of(WaitPhase::kStarting), 300);
  EXPECT_EQ(d.Of(WaitPhase::kAgreeing), 300) << "it waits for a diagnosis, which may take --fault-grace";
  EXPECT_NE(d.Explain(WaitPhase::kAgreeing).find("never learned"), std::string::npos);
}

TEST(Deadlines, AShortStepTimeoutIsTheDeadlineOfEveryPhase) {
  Deadlines d(5);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(d.Record(WaitPhase::kStep, 0.1));
  EXPECT_EQ(d.Of(WaitPhase::kStep), 5);
  EXPECT_NE(d.Explain(WaitPhase::kStep).find("shorter than the learned deadline"), std::string::npos);
}

std::vector<StepTimes> Window(std::vector<double> compute) {
  std::vector<StepTimes> w;
  for (double c : compute) w.push_back({c - 0.001, 0.001, 0.01});  // own time: compute + loader wait
  return w;
}

TEST(Stragglers, MedianOfTheOthers) {
  EXPECT_DOUBLE_EQ(Median({3, 1, 2}), 2);
  EXPECT_DOUBLE_EQ(Median({4, 1, 2, 3}), 2.5);
  EXPECT_NEAR(RatioToOthers(Window({0.1, 0.25}), 1), 2.5, 1e-9) << "2 ranks: against its peer";
  EXPECT_NEAR(RatioToOthers(Window({0.1, 0.25}), 0), 0.4, 1e-9);
  EXPECT_NEAR(RatioToOthers(Window({0.1, 0.3, 0.2}), 1), 2, 1e-9) << "the others: 0.1 and 0.2 s";
  EXPECT_EQ(RatioToOthers(Window({0, 0.1}), 1), 0) << "no step timed: no ratio";
}

TEST(Stragglers, TwoRanksAStragglerIsNamedOnceAfterTwoWindowsAndItsRecoveryOnce) {
  StragglerTracker t;
  EXPECT_TRUE(t.Take(Window({0.1, 0.1})).empty());
  EXPECT_TRUE(t.Take(Window({0.1, 0.2})).empty()) << "one window is not an onset";
  auto events = t.Take(Window({0.1, 0.25}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].onset);
  EXPECT_EQ(events[0].rank, 1);
  EXPECT_NEAR(events[0].ratio, 2.5, 1e-9);
  EXPECT_NEAR(events[0].others_median_s, 0.1, 1e-9);
  EXPECT_DOUBLE_EQ(events[0].times.allreduce_s, 0.01);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(t.Take(Window({0.1, 0.25})).empty()) << "named once per onset";
  EXPECT_TRUE(t.Take(Window({0.1, 0.14})).empty()) << "1.4x: not recovered yet (under 1.25x is)";
  EXPECT_TRUE(t.Take(Window({0.1, 0.11})).empty());
  events = t.Take(Window({0.1, 0.1}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].onset);
  EXPECT_EQ(events[0].rank, 1);
}

TEST(Stragglers, ManyRanksOnlyTheSlowOneIsNamedAndNoiseIsNot) {
  StragglerTracker t;
  std::vector<StragglerEvent> events;
  for (int i = 0; i < 2; ++i) events = t.Take(Window({0.1, 0.12, 0.09, 0.1, 0.3, 0.11}));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].rank, 4);
  // One slow window in a row of even ones names no one.
  StragglerTracker noisy;
  for (int i = 0; i < 10; ++i) {
    const bool spike = i % 2 == 0;
    EXPECT_TRUE(noisy.Take(Window({0.1, spike ? 0.2 : 0.1, 0.1})).empty()) << "window " << i;
  }
}

}  // namespace
}  // namespace trainguard
