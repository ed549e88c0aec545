// Metrics without external servers (promtool aside): the file_sd JSON, URL parsing, option
// checks, the series the observer methods produce, the textfile, and the endpoint's start, its
// failure on a port in use, and its self-probe's deadline.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "diagnostics/metrics/http_get.h"
#include "diagnostics/metrics/metrics.h"
#include "diagnostics/metrics/push.h"
#include "tests/metrics/fill_metrics.h"
#include "tests/metrics/local_servers.h"
#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

using testing::FillEveryFamily;
using testing::TempDir;

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(FileSd, JsonForTwoTargetsIsExact) {
  const std::string json = FileSdJson("job1", {{"node-a", 9400, 0}, {"10.0.0.2", 9401, 1}});
  EXPECT_EQ(json,
            "[\n"
            "  {\n"
            "    \"labels\": {\n"
            "      \"host\": \"node-a\",\n"
            "      \"job\": \"job1\",\n"
            "      \"rank\": \"0\"\n"
            "    },\n"
            "    \"targets\": [\n"
            "      \"node-a:9400\"\n"
            "    ]\n"
            "  },\n"
            "  {\n"
            "    \"labels\": {\n"
            "      \"host\": \"10.0.0.2\",\n"
            "      \"job\": \"job1\",\n"
            "      \"rank\": \"1\"\n"
            "    },\n"
            "    \"targets\": [\n"
            "      \"10.0.0.2:9401\"\n"
            "    ]\n"
            "  }\n"
            "]\n");
}

TEST(FileSd, TargetsFileIsWrittenWholeAndAMissingFolderIsAWarning) {
  TempDir tmp("filesd");
  MetricsOptions o;
  o.targets_file = tmp.File("targets.json");
  Metrics m(o);
  ASSERT_EQ(m.WriteTargetsFile({{"h", 1, 0}}), "");
  EXPECT_EQ(testing::ReadFile(o.targets_file), FileSdJson("trainguard", {{"h", 1, 0}}));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()), {}), 1) << "no temporary left";

  o.targets_file = tmp.File("missing/targets.json");
  const std::string warning = Metrics(o).WriteTargetsFile({{"h", 1, 0}});
  EXPECT_TRUE(Contains(warning, o.targets_file)) << warning;
}

TEST(PushgatewayUrl, SplitsSchemeHostAndPort) {
  GatewayAddress a;
  ASSERT_EQ(ParsePushgatewayUrl("http://127.0.0.1:9091", &a), "");
  EXPECT_EQ(a.host, "http://127.0.0.1");
  EXPECT_EQ(a.port, "9091");
  ASSERT_EQ(ParsePushgatewayUrl("https://gw.example/", &a), "");
  EXPECT_EQ(a.host, "https://gw.example");
  EXPECT_EQ(a.port, "443");
  ASSERT_EQ(ParsePushgatewayUrl("http://[fd00::1]:9091", &a), "");
  EXPECT_EQ(a.host, "http://[fd00::1]");
  EXPECT_EQ(a.port, "9091");
}

TEST(PushgatewayUrl, RejectsWhatGatewayCannotUse) {
  GatewayAddress a;
  EXPECT_TRUE(Contains(ParsePushgatewayUrl("127.0.0.1:9091", &a), "scheme"));
  EXPECT_NE(ParsePushgatewayUrl("http://gw:9091/prefix", &a), "");
  EXPECT_NE(ParsePushgatewayUrl("http://gw:99999", &a), "");
  EXPECT_NE(ParsePushgatewayUrl("http://gw:", &a), "");
  EXPECT_NE(ParsePushgatewayUrl("ftp://gw:21", &a), "");
}

TEST(MetricsOptions, BadValuesThrowNamingTheField) {
  auto message = [](MetricsOptions o) -> std::string {
    try {
      Metrics m(o);
    } catch (const MetricsError& e) {
      return e.what();
    }
    return "";
  };
  MetricsOptions o;
  o.bind = "localhost";
  EXPECT_TRUE(Contains(message(o), "bind")) << message(o);
  o = {};
  o.job = "a/b";
  EXPECT_TRUE(Contains(message(o), "job")) << message(o);
  o = {};
  o.pushgateway_url = "127.0.0.1:9091";
  EXPECT_TRUE(Contains(message(o), "pushgateway_url")) << message(o);
  o = {};
  o.port_base = -2;
  EXPECT_TRUE(Contains(message(o), "port_base")) << message(o);
  EXPECT_EQ(message(MetricsOptions{}), "");
}

// The labels of a series of rank 3 (local rank 1) on node-a as prometheus-cpp writes them: the
// constant labels, then the series' own, each group sorted.
std::string Labels(const std::map<std::string, std::string>& own) {
  std::string out = "host=\"node-a\",job=\"trainguard\",local_rank=\"1\",rank=\"3\"";
  for (const auto& [name, value] : own) out += "," + name + "=\"" + value + "\"";
  return out;
}

TEST(MetricsText, ObserverMethodsSetTheSeries) {
  MetricsOptions o;
  o.rank = 3;
  o.local_rank = 1;
  o.host = "node-a";
  o.max_class_series = 2;
  Metrics m(o);
  const std::string labels = Labels({});
  EXPECT_TRUE(Contains(m.Text(), "trainguard_steps_total{" + labels + "} 0\n")) << m.Text();
  EXPECT_FALSE(Contains(m.Text(), "trainguard_loss{")) << "no loss series before a step";

  EXPECT_TRUE(Contains(m.Text(), "trainguard_preemptions_total{" + labels + "} 0\n")) << m.Text();
  EXPECT_TRUE(Contains(m.Text(), "trainguard_quarantined_samples_total{" + labels + "} 0\n")) << m.Text();
  EXPECT_FALSE(Contains(m.Text(), "trainguard_finished_timestamp_seconds{")) << "no end while the run trains";
  for (const char* kind : kFailureKinds) {
    EXPECT_TRUE(Contains(m.Text(), "trainguard_failures_total{" + Labels({{"kind", kind}}) + "} 0\n")) << kind;
  }
  EXPECT_FALSE(Contains(m.Text(), "trainguard_exit_code{")) << "no exit code while the run trains";
  EXPECT_TRUE(Contains(m.Text(), "trainguard_phase{" + Labels({{"phase", "starting"}}) + "} 1\n")) << m.Text();
  EXPECT_TRUE(Contains(m.Text(), "trainguard_phase{" + Labels({{"phase", "training"}}) + "} 0\n")) << m.Text();
  EXPECT_TRUE(Contains(m.Text(), "trainguard_last_progress_timestamp_seconds{" + labels + "} ")) << m.Text();

  FillEveryFamily(m);
  m.OnFailure("no-such-kind", 1);
  m.OnPreemption();
  const std::string text = m.Text();
  EXPECT_TRUE(Contains(text, "trainguard_preemptions_total{" + labels + "} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_steps_total{" + labels + "} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_samples_total{" + labels + "} 128\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_loss{" + labels + "} 2.2\n")) << "the epoch's mean after it ends";
  EXPECT_TRUE(Contains(text, "trainguard_step_duration_seconds_count{" + labels + "} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_step_duration_seconds_bucket{" + labels + ",le=\"0.1\"} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_step_duration_seconds_bucket{" + labels + ",le=\"60\"} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_labels{" + Labels({{"kind", "too_large"}}) + "} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_labels_per_class{" + Labels({{"class", "1"}}) + "} 30\n")) << text;
  EXPECT_FALSE(Contains(text, "class=\"2\"")) << "classes from max_class_series on have no series";
  EXPECT_TRUE(Contains(text, "trainguard_failures_total{" + Labels({{"kind", "stall"}}) + "} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_failures_total{" + Labels({{"kind", "internal"}}) + "} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_failures_total{" + Labels({{"kind", "non_finite"}}) + "} 0\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_exit_code{" + labels + "} 1\n")) << "the last failure's code:\n" << text;
  EXPECT_TRUE(Contains(text, "trainguard_phase{" + Labels({{"phase", "stopping"}}) + "} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_phase{" + Labels({{"phase", "evaluating"}}) + "} 0\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_progress_deadline_seconds{" + labels + "} 330\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_ignored_targets_total{" + labels + "} 3\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_quarantined_samples_total{" + labels + "} 3\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_finished_timestamp_seconds{" + labels + "} ")) << text;
  EXPECT_TRUE(Contains(text, "world_size=\"1\"")) << text;
  const auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const size_t at = text.find("trainguard_last_success_timestamp_seconds{" + labels + "} ");
  ASSERT_NE(at, std::string::npos) << text;
  const double stamp = std::stod(text.substr(text.find("} ", at) + 2));
  EXPECT_NEAR(stamp, now, 60);
}

TEST(MetricsText, OnePhaseAtATime) {
  MetricsOptions o;
  o.rank = 3;
  o.local_rank = 1;
  o.host = "node-a";
  Metrics m(o);
  m.SetPhase("checkpointing");
  for (const char* phase : kPhases) {
    const std::string want = std::string(phase) == "checkpointing" ? "1" : "0";
    EXPECT_TRUE(Contains(m.Text(), "trainguard_phase{" + Labels({{"phase", phase}}) + "} " + want + "\n")) << phase;
  }
  m.OnFinished();
  EXPECT_TRUE(Contains(m.Text(), "trainguard_phase{" + Labels({{"phase", "finished"}}) + "} 1\n")) << m.Text();
  EXPECT_TRUE(Contains(m.Text(), "trainguard_exit_code{" + Labels({}) + "} 0\n")) << m.Text();
}

TEST(MetricsText, RestartsInPlaceAndExcludedNodes) {
  MetricsOptions o;
  o.rank = 3;
  o.local_rank = 1;
  o.host = "node-a";
  Metrics m(o);
  m.SetRestarts(3, 2, {"node-b", "node-c"});
  const std::string text = m.Text();
  EXPECT_TRUE(Contains(text, "trainguard_restarts{" + Labels({}) + "} 3\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_restarts_in_place{" + Labels({}) + "} 2\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_excluded_node{" + Labels({{"node", "node-b"}}) + "} 1\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_excluded_node{" + Labels({{"node", "node-c"}}) + "} 1\n")) << text;
}

TEST(Textfile, WrittenAtomicallyAndPassesPromtool) {
  TempDir tmp("textfile");
  MetricsOptions o;
  o.rank = 2;
  o.job = "exp-1";
  o.textfile_dir = tmp.path();
  Metrics m(o);
  FillEveryFamily(m);
  ASSERT_EQ(m.WriteTextfile(), "");
  m.OnStep(0.1, 64, 2.0, 0, 0, 0);
  ASSERT_EQ(m.WriteTextfile(), "") << "a second write replaces the first";
  const std::string path = tmp.File("trainguard_exp-1_rank2.prom");
  EXPECT_EQ(testing::ReadFile(path), m.Text());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.path()), {}), 1) << "no temporary left";
  const auto [status, output] = testing::PromtoolCheckMetrics(path);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "");

  o.textfile_dir = tmp.File("missing");
  const std::string warning = Metrics(o).WriteTextfile();
  EXPECT_TRUE(Contains(warning, tmp.File("missing/trainguard_exp-1_rank2.prom"))) << warning;
}

// Two threads of one rank (the training thread's stop, the signal thread) may write the textfile
// at once; its temporary name is per process, so the writes must take turns or one renames the
// other's half-written file away.
TEST(Textfile, TwoThreadsWritingAtOnceBothSucceed) {
  TempDir tmp("textfile_threads");
  MetricsOptions o;
  o.textfile_dir = tmp.path();
  Metrics m(o);
  FillEveryFamily(m);
  std::atomic<int> failed{0};
  auto write = [&] {
    for (int i = 0; i < 300; ++i) failed += m.WriteTextfile().empty() ? 0 : 1;
  };
  std::thread other(write);
  write();
  other.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(testing::ReadFile(tmp.File("trainguard_trainguard_rank0.prom")), m.Text());
}

// A textfile folder that does not exist is said once, at start, and not again at every write;
// with --metrics-required it stops the job.
TEST(Textfile, AMissingFolderIsReportedOnceAtStart) {
  TempDir tmp("textfile_missing");
  MetricsOptions o;
  o.textfile_dir = tmp.File("missing");
  Metrics m(o);
  const std::string warning = m.CheckTextfile();
  EXPECT_TRUE(Contains(warning, "--metrics-textfile " + tmp.File("missing") + " is not a folder")) << warning;
  EXPECT_EQ(m.WriteTextfile(), "") << "said once already";
  EXPECT_EQ(m.WriteTextfile(), "");
  o.required = true;
  Metrics required(o);
  EXPECT_THROW(required.CheckTextfile(), MetricsError);
  EXPECT_EQ(required.WriteTextfile(), "") << "the fatal error said it: the exit's flush does not repeat it";
  o.textfile_dir = tmp.path();
  EXPECT_EQ(Metrics(o).CheckTextfile(), "");
}

TEST(Endpoint, NoEndpointByDefault) {
  Metrics m(MetricsOptions{});
  EXPECT_EQ(m.Start(), "");
  EXPECT_EQ(m.port(), 0);
}

TEST(Endpoint, ServesMetricsThatPassPromtool) {
  TempDir tmp("scraped");
  MetricsOptions o;
  o.port_base = 0;
  o.bind = "127.0.0.1";
  Metrics m(o);
  ASSERT_EQ(m.Start(), "");
  ASSERT_GT(m.port(), 0);
  FillEveryFamily(m);
  const HttpResponse r = HttpGet("127.0.0.1", m.port(), "/metrics", 2);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(Contains(r.body, "trainguard_steps_total{")) << r.body;
  std::ofstream(tmp.File("scraped.prom")) << r.body;
  const auto [status, output] = testing::PromtoolCheckMetrics(tmp.File("scraped.prom"));
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "");
}

TEST(Endpoint, CountsScrapesButNotItsOwnStartProbe) {
  MetricsOptions o;
  o.port_base = 0;
  o.bind = "127.0.0.1";
  Metrics m(o);
  EXPECT_EQ(m.scrapes(), 0);
  ASSERT_EQ(m.Start(), "");
  EXPECT_EQ(m.scrapes(), 0);
  for (int k = 1; k <= 2; ++k) {
    ASSERT_EQ(HttpGet("127.0.0.1", m.port(), "/metrics", 2).status, 200);
    EXPECT_EQ(m.scrapes(), k);
  }
  m.Text();  // the text for a push or a textfile is no scrape
  EXPECT_EQ(m.scrapes(), 2);
}

TEST(Endpoint, StopsWithinASecondAndFreesThePort) {
  int port = 0;
  std::chrono::steady_clock::time_point start;
  {
    MetricsOptions o;
    o.port_base = 0;
    o.bind = "127.0.0.1";
    Metrics m(o);
    ASSERT_EQ(m.Start(), "");
    port = m.port();
    start = std::chrono::steady_clock::now();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0)
      << "civetweb's listener was not woken";
  EXPECT_EQ(HttpGet("127.0.0.1", port, "/metrics", 1).status, 0);
}

TEST(Endpoint, PortIsBasePlusLocalRank) {
  const int port = testing::FreePort();
  MetricsOptions o;
  o.bind = "127.0.0.1";
  o.local_rank = 1;
  o.port_base = port - 1;
  Metrics m(o);
  ASSERT_EQ(m.Start(), "");
  EXPECT_EQ(m.port(), port);
  EXPECT_EQ(m.SelfTarget().port, port);
}

TEST(Endpoint, PortInUseWarnsWithCivetwebsReasonOrThrowsWhenRequired) {
  testing::SilentServer taken;
  MetricsOptions o;
  o.bind = "127.0.0.1";
  o.port_base = taken.port();
  Metrics m(o);
  const std::string warning = m.Start();
  const std::string address = "127.0.0.1:" + std::to_string(taken.port());
  EXPECT_TRUE(Contains(warning, address)) << warning;
  EXPECT_TRUE(Contains(warning, "Address already in use")) << warning;
  EXPECT_FALSE(Contains(warning, "null context")) << warning;
  EXPECT_EQ(m.port(), 0);
  m.OnStep(0.1, 1, 1, 0, 0, 0);  // the metrics stay usable

  o.required = true;
  Metrics required(o);
  try {
    required.Start();
    FAIL() << "expected MetricsError";
  } catch (const MetricsError& e) {
    EXPECT_TRUE(Contains(e.what(), "Address already in use")) << e.what();
    EXPECT_TRUE(Contains(e.what(), address)) << e.what();
  }
}

TEST(HttpGet, ServerThatNeverAnswersEndsAtTheDeadline) {
  testing::SilentServer silent;
  const auto start = std::chrono::steady_clock::now();
  const HttpResponse r = HttpGet("127.0.0.1", silent.port(), "/metrics", 0.5);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(Contains(r.error, "deadline")) << r.error;
  EXPECT_GE(took, 0.45);
  EXPECT_LT(took, 1.5);
}

TEST(HttpGet, ClosedPortIsRefused) {
  const HttpResponse r = HttpGet("127.0.0.1", testing::FreePort(), "/metrics", 2);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(Contains(r.error, "refused")) << r.error;
}

}  // namespace
}  // namespace trainguard
