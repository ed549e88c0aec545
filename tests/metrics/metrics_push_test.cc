// Pushes to a real Pushgateway (1.5.1, on loopback): a push replaces this rank's whole group
// job/rank and leaves other ranks' groups alone; a Pushgateway that is down, or that accepts
// and never answers, costs the caller a warning and at most push_timeout_s, never an exception.
#include <gtest/gtest.h>

#include <chrono>

#include "diagnostics/metrics/metrics.h"
#include "tests/metrics/local_servers.h"
#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

MetricsOptions PushOptions(const std::string& url, int rank) {
  MetricsOptions o;
  o.rank = rank;
  o.host = "node-a";
  o.pushgateway_url = url;
  o.push_timeout_s = 2;
  return o;
}

TEST(Pushgateway, SecondPushReplacesTheRanksGroupOnly) {
  testing::TempDir tmp("pushgateway");
  testing::LocalPushgateway gateway(tmp.path());

  Metrics other(PushOptions(gateway.url(), 1));  // rank 1's group must survive rank 0's pushes
  other.OnStep(0.1, 8, 1, 0, 0, 0);
  ASSERT_EQ(other.Push(), "");

  Metrics first(PushOptions(gateway.url(), 0));
  for (int i = 0; i < 3; ++i) first.OnStep(0.1, 8, 1, 0, 0, 0);
  first.OnFailure("stall", 6);
  ASSERT_EQ(first.Push(), "");
  std::string text = gateway.Metrics();
  EXPECT_TRUE(Contains(text, "rank=\"0\"} 3\n") && Contains(text, "trainguard_exit_code{")) << text;

  // The same rank again (a restarted run): 5 steps and no exit code. A PUT replaces the whole
  // group, so the exit code goes; a POST would have kept it.
  Metrics second(PushOptions(gateway.url(), 0));
  for (int i = 0; i < 5; ++i) second.OnStep(0.1, 8, 1, 0, 0, 0);
  ASSERT_EQ(second.Push(), "");
  text = gateway.Metrics();
  const std::string rank0 = "instance=\"\",job=\"trainguard\",local_rank=\"0\",rank=\"0\"}";
  const std::string rank1 = "instance=\"\",job=\"trainguard\",local_rank=\"0\",rank=\"1\"}";
  EXPECT_TRUE(Contains(text, "trainguard_steps_total{host=\"node-a\"," + rank0 + " 5\n")) << text;
  EXPECT_FALSE(Contains(text, "trainguard_steps_total{host=\"node-a\"," + rank0 + " 3\n")) << text;
  EXPECT_FALSE(Contains(text, "trainguard_exit_code{")) << "the first push's group was not replaced:\n" << text;
  EXPECT_TRUE(Contains(text, "trainguard_steps_total{host=\"node-a\"," + rank1 + " 1\n")) << text;
}

TEST(Pushgateway, ClosedPortIsAQuickWarning) {
  const std::string url = "http://127.0.0.1:" + std::to_string(testing::FreePort());
  Metrics m(PushOptions(url, 0));
  const auto start = std::chrono::steady_clock::now();
  const std::string warning = m.Push();
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_TRUE(Contains(warning, url)) << warning;
  EXPECT_TRUE(Contains(warning, "connect")) << warning;
}

TEST(Pushgateway, SilentGatewayCostsAtMostTheTimeout) {
  testing::SilentServer silent;
  MetricsOptions o = PushOptions("http://127.0.0.1:" + std::to_string(silent.port()), 0);
  o.push_timeout_s = 1;
  Metrics m(o);
  const auto start = std::chrono::steady_clock::now();
  const std::string warning = m.Push();
  const double took = SecondsSince(start);
  EXPECT_GE(took, 0.9);
  EXPECT_LT(took, o.push_timeout_s + 1);
  EXPECT_TRUE(Contains(warning, "no answer within 1 s")) << warning;
}

}  // namespace
}  // namespace trainguard
