// GpuHealthReader against the fake NVML (fake_nvml.c, loaded by path; its values set through
// FAKE_NVML_* variables before each call), and the trainguard_gpu_* series Metrics makes of a
// reading and of events.
#include "diagnostics/metrics/gpu_health.h"

#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "diagnostics/metrics/gpu_watch.h"
#include "diagnostics/metrics/metrics.h"
#include "tests/support/temp_dir.h"

namespace trainguard {
namespace {

using testing::TempDir;

constexpr const char* kBusId = "0000:3B:00.0";

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Each test starts and ends with no FAKE_NVML_* variable set: the fake's defaults.
class FakeNvml : public ::testing::Test {
 protected:
  void SetUp() override { Clear(); }
  void TearDown() override { Clear(); }
  static void Clear() {
    for (const char* name : {"FAKE_NVML_BUS_ID", "FAKE_NVML_UTIL", "FAKE_NVML_MEM_USED", "FAKE_NVML_MEM_TOTAL",
                             "FAKE_NVML_TEMP", "FAKE_NVML_POWER_MW", "FAKE_NVML_THROTTLE", "FAKE_NVML_ECC_CORRECTED",
                             "FAKE_NVML_ECC_UNCORRECTED", "FAKE_NVML_XID", "FAKE_NVML_DBE", "FAKE_NVML_INIT_FAIL",
                             "FAKE_NVML_FAIL", "FAKE_NVML_NOT_SUPPORTED", "FAKE_NVML_LOG", "FAKE_NVML_XID_FILE"}) {
      ::unsetenv(name);
    }
  }
  static void Set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }

  // Opens kBusId on the fake; fails the test with the reason when it does not open.
  static std::unique_ptr<GpuHealthReader> OpenFake(const std::string& bus_id = kBusId) {
    std::string why;
    auto reader = GpuHealthReader::Open(bus_id, TG_FAKE_NVML, &why);
    EXPECT_NE(reader, nullptr) << why;
    return reader;
  }
};

TEST_F(FakeNvml, ReadReturnsTheDevicesValuesInBaseUnits) {
  Set("FAKE_NVML_UTIL", "87");
  Set("FAKE_NVML_MEM_USED", "3221225472");
  Set("FAKE_NVML_MEM_TOTAL", "85899345920");
  Set("FAKE_NVML_TEMP", "71");
  Set("FAKE_NVML_POWER_MW", "254500");
  Set("FAKE_NVML_THROTTLE", "0x44");
  Set("FAKE_NVML_ECC_CORRECTED", "3");
  Set("FAKE_NVML_ECC_UNCORRECTED", "1");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->bus_id(), kBusId);
  EXPECT_EQ(reader->events_unavailable(), "");
  GpuHealth h = reader->Read();
  EXPECT_EQ(h.bus_id, kBusId);
  EXPECT_EQ(h.error, "");
  ASSERT_TRUE(h.utilization_ratio && h.memory_used_bytes && h.memory_total_bytes && h.temperature_celsius &&
              h.power_watts && h.throttle_reasons && h.ecc_corrected && h.ecc_uncorrected);
  EXPECT_DOUBLE_EQ(*h.utilization_ratio, 0.87);
  EXPECT_EQ(*h.memory_used_bytes, 3221225472u);
  EXPECT_EQ(*h.memory_total_bytes, 85899345920u);
  EXPECT_DOUBLE_EQ(*h.temperature_celsius, 71);
  EXPECT_DOUBLE_EQ(*h.power_watts, 254.5);
  EXPECT_EQ(*h.throttle_reasons, 0x44u);
  EXPECT_EQ(*h.ecc_corrected, 3u);
  EXPECT_EQ(*h.ecc_uncorrected, 1u);

  Set("FAKE_NVML_TEMP", "92");
  EXPECT_EQ(reader->Read().temperature_celsius.value_or(-1), 92) << "each Read asks the device again";
}

TEST_F(FakeNvml, BusIdMatchesWithoutCase) { EXPECT_NE(OpenFake("0000:3b:00.0"), nullptr); }

TEST_F(FakeNvml, MissingLibraryIsAReasonNamingThePath) {
  std::string why;
  EXPECT_EQ(GpuHealthReader::Open(kBusId, "/nonexistent/libnvidia-ml.so.1", &why), nullptr);
  EXPECT_TRUE(Contains(why, "/nonexistent/libnvidia-ml.so.1")) << why;
  EXPECT_EQ(GpuHealthReader::Open(kBusId, "/nonexistent/libnvidia-ml.so.1", nullptr), nullptr)
      << "no reason asked for: still no crash";
}

TEST_F(FakeNvml, LibraryThatIsNotNvmlIsRefusedNamingIt) {
  std::string why;
  EXPECT_EQ(GpuHealthReader::Open(kBusId, "libm.so.6", &why), nullptr);
  EXPECT_TRUE(Contains(why, "libm.so.6")) << why;
  EXPECT_TRUE(Contains(why, "nvmlInit_v2")) << "dlerror names the missing function: " << why;
}

TEST_F(FakeNvml, InitFailureGivesNvmlsMessageAndNoShutdown) {
  TempDir tmp("fake_nvml_init");
  Set("FAKE_NVML_LOG", tmp.File("calls"));
  Set("FAKE_NVML_INIT_FAIL", "9");
  std::string why;
  EXPECT_EQ(GpuHealthReader::Open(kBusId, TG_FAKE_NVML, &why), nullptr);
  EXPECT_TRUE(Contains(why, "nvmlInit_v2: Driver Not Loaded")) << why;
  EXPECT_EQ(ReadFile(tmp.File("calls")), "nvmlInit_v2\n") << "NVML that did not start is not shut down";
}

TEST_F(FakeNvml, UnknownBusIdIsRefusedNamingItAndShutsNvmlDown) {
  TempDir tmp("fake_nvml_bus");
  Set("FAKE_NVML_LOG", tmp.File("calls"));
  std::string why;
  EXPECT_EQ(GpuHealthReader::Open("0000:AF:00.0", TG_FAKE_NVML, &why), nullptr);
  EXPECT_TRUE(Contains(why, "'0000:AF:00.0'")) << why;
  EXPECT_TRUE(Contains(why, "Not Found")) << why;
  EXPECT_EQ(ReadFile(tmp.File("calls")), "nvmlInit_v2\nnvmlShutdown\n");
}

TEST_F(FakeNvml, DestructorFreesTheEventSetThenShutsNvmlDown) {
  TempDir tmp("fake_nvml_close");
  Set("FAKE_NVML_LOG", tmp.File("calls"));
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(ReadFile(tmp.File("calls")), "nvmlInit_v2\nnvmlEventSetCreate\n");
  reader.reset();
  EXPECT_EQ(ReadFile(tmp.File("calls")), "nvmlInit_v2\nnvmlEventSetCreate\nnvmlEventSetFree\nnvmlShutdown\n");
}

TEST_F(FakeNvml, NotSupportedLeavesThatValueOutWithoutAnError) {
  Set("FAKE_NVML_NOT_SUPPORTED", "power,ecc");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  const GpuHealth h = reader->Read();
  EXPECT_FALSE(h.power_watts);
  EXPECT_FALSE(h.ecc_corrected);
  EXPECT_FALSE(h.ecc_uncorrected);
  EXPECT_TRUE(h.temperature_celsius && h.utilization_ratio && h.memory_used_bytes && h.throttle_reasons);
  EXPECT_EQ(h.error, "");
}

TEST_F(FakeNvml, FailedQueriesLeaveValuesOutAndAreNamed) {
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  Set("FAKE_NVML_FAIL", "15");
  const GpuHealth h = reader->Read();
  EXPECT_FALSE(h.utilization_ratio || h.memory_used_bytes || h.temperature_celsius || h.power_watts ||
               h.throttle_reasons || h.ecc_corrected || h.ecc_uncorrected);
  EXPECT_TRUE(Contains(h.error, "nvmlDeviceGetPowerUsage: GPU is lost")) << h.error;
  EXPECT_TRUE(Contains(h.error, "nvmlDeviceGetTemperature: GPU is lost")) << h.error;
  std::string error;
  EXPECT_TRUE(reader->PollEvents(0, &error).empty());
  EXPECT_TRUE(Contains(error, "nvmlEventSetWait_v2: GPU is lost")) << error;
}

TEST_F(FakeNvml, XidEventIsDeliveredOnceWithItsNumber) {
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  EXPECT_TRUE(reader->PollEvents(0).empty());
  Set("FAKE_NVML_XID", "79");
  std::string error = "stale";
  const std::vector<GpuEvent> events = reader->PollEvents(0, &error);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, GpuEvent::Kind::kXid);
  EXPECT_EQ(events[0].xid, 79u);
  EXPECT_EQ(events[0].bus_id, kBusId);
  EXPECT_EQ(error, "");
  EXPECT_TRUE(reader->PollEvents(0).empty()) << "an event is delivered once";
}

TEST_F(FakeNvml, PendingEventsComeInOnePoll) {
  Set("FAKE_NVML_XID", "48");
  Set("FAKE_NVML_DBE", "1");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  const std::vector<GpuEvent> events = reader->PollEvents(1000);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, GpuEvent::Kind::kXid);
  EXPECT_EQ(events[0].xid, 48u);
  EXPECT_EQ(events[1].kind, GpuEvent::Kind::kDoubleBitEcc);
  EXPECT_EQ(events[1].xid, 0u);
}

TEST_F(FakeNvml, PollWithoutEventsReturnsNoneAtTheDeadline) {
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  const auto start = std::chrono::steady_clock::now();
  std::string error = "stale";
  EXPECT_TRUE(reader->PollEvents(100, &error).empty());
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.09);
  EXPECT_LT(waited, 2.0);
  EXPECT_EQ(error, "") << "a timeout is not an error";
}

TEST_F(FakeNvml, DeviceWithoutEventsOpensAndPollReturnsAtOnce) {
  Set("FAKE_NVML_NOT_SUPPORTED", "events");
  Set("FAKE_NVML_XID", "79");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  EXPECT_TRUE(Contains(reader->events_unavailable(), "nvmlEventSetCreate: Not Supported"))
      << reader->events_unavailable();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(reader->PollEvents(5000).empty());
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.0);
  EXPECT_TRUE(reader->Read().temperature_celsius) << "values are read without events";
}

TEST_F(FakeNvml, DeviceWithoutEccEventsStillReportsXid) {
  Set("FAKE_NVML_NOT_SUPPORTED", "dbe_events");
  Set("FAKE_NVML_XID", "13");
  Set("FAKE_NVML_DBE", "1");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(reader->events_unavailable(), "");
  const std::vector<GpuEvent> events = reader->PollEvents(0);
  ASSERT_EQ(events.size(), 1u) << "double-bit ECC events were not registered";
  EXPECT_EQ(events[0].xid, 13u);
}

// The labels of a GPU series of rank 3 (local rank 1) on node-a as prometheus-cpp writes them: the
// constant labels, then the series' own (gpu first), each group sorted.
std::string Labels(const std::map<std::string, std::string>& own) {
  std::string out = "host=\"node-a\",job=\"trainguard\",local_rank=\"1\",rank=\"3\"";
  for (const auto& [name, value] : own) out += "," + name + "=\"" + value + "\"";
  return out;
}

MetricsOptions Rank3() {
  MetricsOptions o;
  o.rank = 3;
  o.local_rank = 1;
  o.host = "node-a";
  return o;
}

GpuHealth FullReading(const std::string& bus_id) {
  GpuHealth h;
  h.bus_id = bus_id;
  h.utilization_ratio = 0.25;
  h.memory_used_bytes = 3221225472;
  h.memory_total_bytes = 85899345920;
  h.temperature_celsius = 71;
  h.power_watts = 254.5;
  h.throttle_reasons = 0x44;  // sw_power_cap, hw_thermal_slowdown
  h.ecc_corrected = 3;
  h.ecc_uncorrected = 1;
  return h;
}

TEST(GpuMetrics, ReadingBecomesSeriesLabelledWithTheGpu) {
  Metrics m(Rank3());
  EXPECT_FALSE(Contains(m.Text(), "gpu=\"")) << "no GPU series before a reading";
  m.SetGpuHealth(FullReading(kBusId));
  const std::string text = m.Text();
  const std::string gpu = Labels({{"gpu", kBusId}});
  EXPECT_TRUE(Contains(text, "trainguard_gpu_utilization_ratio{" + gpu + "} 0.25\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_memory_used_bytes{" + gpu + "} 3221225472\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_memory_total_bytes{" + gpu + "} 85899345920\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_temperature_celsius{" + gpu + "} 71\n")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_power_watts{" + gpu + "} 254.5\n")) << text;
  for (const ThrottleReason& reason : kThrottleReasons) {
    const bool on = reason.bit == 0x4 || reason.bit == 0x40;
    EXPECT_TRUE(Contains(text, "trainguard_gpu_throttled{" + Labels({{"gpu", kBusId}, {"reason", reason.name}}) + "} " +
                                   (on ? "1" : "0") + "\n"))
        << reason.name << "\n"
        << text;
  }
  EXPECT_TRUE(
      Contains(text, "trainguard_gpu_ecc_errors{" + Labels({{"gpu", kBusId}, {"type", "corrected"}}) + "} 3\n"));
  EXPECT_TRUE(
      Contains(text, "trainguard_gpu_ecc_errors{" + Labels({{"gpu", kBusId}, {"type", "uncorrected"}}) + "} 1\n"));

  m.SetGpuHealth(FullReading("0000:AF:00.0"));
  EXPECT_TRUE(Contains(m.Text(), "trainguard_gpu_power_watts{" + Labels({{"gpu", "0000:AF:00.0"}}) + "} 254.5\n"));
  EXPECT_TRUE(Contains(m.Text(), "trainguard_gpu_power_watts{" + gpu + "} 254.5\n")) << "one set of series per GPU";
}

TEST(GpuMetrics, ValueNoLongerReportedLosesItsSeries) {
  Metrics m(Rank3());
  m.SetGpuHealth(FullReading(kBusId));
  GpuHealth partial = FullReading(kBusId);
  partial.power_watts.reset();
  partial.throttle_reasons.reset();
  partial.ecc_uncorrected.reset();
  partial.temperature_celsius = 80;
  m.SetGpuHealth(partial);
  const std::string text = m.Text();
  EXPECT_FALSE(Contains(text, "trainguard_gpu_power_watts{")) << text;
  EXPECT_FALSE(Contains(text, "trainguard_gpu_throttled{")) << text;
  EXPECT_FALSE(Contains(text, "type=\"uncorrected\"")) << text;
  EXPECT_TRUE(Contains(text, "type=\"corrected\"")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_temperature_celsius{" + Labels({{"gpu", kBusId}}) + "} 80\n")) << text;
}

TEST(GpuMetrics, EventsAreCountedByXid) {
  Metrics m(Rank3());
  m.OnGpuEvent({kBusId, GpuEvent::Kind::kXid, 79});
  m.OnGpuEvent({kBusId, GpuEvent::Kind::kXid, 79});
  m.OnGpuEvent({kBusId, GpuEvent::Kind::kXid, 13});
  m.OnGpuEvent({kBusId, GpuEvent::Kind::kDoubleBitEcc, 0});
  const std::string text = m.Text();
  EXPECT_TRUE(Contains(text, "trainguard_gpu_xid_events_total{" + Labels({{"gpu", kBusId}, {"xid", "79"}}) + "} 2\n"))
      << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_xid_events_total{" + Labels({{"gpu", kBusId}, {"xid", "13"}}) + "} 1\n"))
      << text;
  EXPECT_FALSE(Contains(text, "xid=\"0\"")) << "a double-bit ECC event is no Xid";
  EXPECT_TRUE(Contains(text, "trainguard_gpu_double_bit_ecc_events_total{" + Labels({{"gpu", kBusId}}) + "} 1\n"))
      << text;
}

TEST_F(FakeNvml, ReaderToMetricsEndToEnd) {
  Set("FAKE_NVML_TEMP", "66");
  Set("FAKE_NVML_NOT_SUPPORTED", "power");
  Set("FAKE_NVML_XID", "94");
  auto reader = OpenFake();
  ASSERT_NE(reader, nullptr);
  Metrics m(Rank3());
  m.SetGpuHealth(reader->Read());
  for (const GpuEvent& event : reader->PollEvents(0)) m.OnGpuEvent(event);
  const std::string text = m.Text();
  EXPECT_TRUE(Contains(text, "trainguard_gpu_temperature_celsius{" + Labels({{"gpu", kBusId}}) + "} 66\n")) << text;
  EXPECT_FALSE(Contains(text, "trainguard_gpu_power_watts{")) << text;
  EXPECT_TRUE(Contains(text, "trainguard_gpu_xid_events_total{" + Labels({{"gpu", kBusId}, {"xid", "94"}}) + "} 1\n"))
      << text;
}

// Waits up to 5 s for `done`, checking every 20 ms; returns whether it came.
template <typename Done>
bool WaitFor(Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

TEST_F(FakeNvml, WatchReportsAnEventWithTheStepItCameAfter) {
  TempDir dir("gpu_watch");
  const std::string xid_file = dir.File("xid");
  Set("FAKE_NVML_XID_FILE", xid_file);
  Set("FAKE_NVML_TEMP", "66");
  Metrics m(Rank3());
  GpuWatch watch(OpenFake(), &m, 0.2);
  const std::string temperature = "trainguard_gpu_temperature_celsius{" + Labels({{"gpu", kBusId}}) + "} 66\n";
  EXPECT_TRUE(WaitFor([&] { return Contains(m.Text(), temperature); })) << m.Text();
  EXPECT_TRUE(watch.Events().empty());
  watch.SetStep(12);
  {
    std::ofstream(xid_file + ".tmp") << "79\n";
    ASSERT_EQ(::rename((xid_file + ".tmp").c_str(), xid_file.c_str()), 0);
  }
  ASSERT_TRUE(WaitFor([&] { return !watch.Events().empty(); })) << "the Xid was not reported within 5 s";
  const std::vector<std::string> events = watch.Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], std::string("GPU ") + kBusId + ": Xid 79 (GPU has fallen off the bus) after step 12");
  EXPECT_TRUE(
      Contains(m.Text(), "trainguard_gpu_xid_events_total{" + Labels({{"gpu", kBusId}, {"xid", "79"}}) + "} 1\n"))
      << m.Text();
}

TEST_F(FakeNvml, WatchWithoutEventsReadsHealthAndStopsAtOnce) {
  Set("FAKE_NVML_NOT_SUPPORTED", "events");
  Set("FAKE_NVML_UTIL", "40");
  Metrics m(Rank3());
  auto watch = std::make_unique<GpuWatch>(OpenFake(), &m, 60);
  const std::string utilization = "trainguard_gpu_utilization_ratio{" + Labels({{"gpu", kBusId}}) + "} 0.4\n";
  EXPECT_TRUE(WaitFor([&] { return Contains(m.Text(), utilization); })) << m.Text();
  const auto begin = std::chrono::steady_clock::now();
  watch.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(1))
      << "the watch must not sleep out its 60 s period when stopped";
}

TEST_F(FakeNvml, WatchStopsWithinAnEventWait) {
  auto watch = std::make_unique<GpuWatch>(OpenFake(), nullptr, 60);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the thread waits for events now
  const auto begin = std::chrono::steady_clock::now();
  watch.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(1));
}

}  // namespace
}  // namespace trainguard
