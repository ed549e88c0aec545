// A real Prometheus (2.42, on loopback) finds a rank's endpoint through the file_sd targets
// file and scrapes it: the query API returns trainguard_steps_total with the rank's labels.
#include <gtest/gtest.h>

#include "diagnostics/metrics/metrics.h"
#include "tests/metrics/local_servers.h"
#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

TEST(Prometheus, ScrapesStepsOfAFileSdTargetWithItsRank) {
  testing::TempDir tmp("prometheus");
  MetricsOptions o;
  o.rank = 1;
  o.local_rank = 1;
  o.world_size = 2;
  o.host = "127.0.0.1";
  o.port_base = 0;
  o.bind = "127.0.0.1";
  o.targets_file = tmp.File("targets.json");
  Metrics m(o);
  ASSERT_EQ(m.Start(), "");
  for (int i = 0; i < 7; ++i) m.OnStep(0.05, 32, 1.5, 0.001, 0.002, 0);
  ASSERT_EQ(m.WriteTargetsFile({m.SelfTarget()}), "");

  testing::LocalPrometheus prometheus(tmp.path(), o.targets_file);
  const nlohmann::json up = prometheus.QueryUntilPresent("up{rank=\"1\"} == 1", 20);
  ASSERT_EQ(up.size(), 1u) << "no successful scrape within 20 s; Prometheus log:\n" << prometheus.Log();
  EXPECT_EQ(up[0]["metric"]["instance"], "127.0.0.1:" + std::to_string(m.port()));

  const nlohmann::json steps = prometheus.Query("trainguard_steps_total");
  ASSERT_EQ(steps.size(), 1u) << steps.dump();
  EXPECT_EQ(steps[0]["value"][1], "7");
  const nlohmann::json& labels = steps[0]["metric"];
  EXPECT_EQ(labels["rank"], "1") << labels.dump();
  EXPECT_EQ(labels["local_rank"], "1") << labels.dump();
  EXPECT_EQ(labels["job"], "trainguard") << labels.dump();
  EXPECT_EQ(labels["host"], "127.0.0.1") << labels.dump();
  EXPECT_FALSE(labels.contains("exported_rank")) << labels.dump();
}

}  // namespace
}  // namespace trainguard
