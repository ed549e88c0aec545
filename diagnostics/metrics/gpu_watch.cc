// GpuWatch: the thread that reads a GPU's health and reports its events. See gpu_watch.h.
#include "diagnostics/metrics/gpu_watch.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <utility>

#include "trainer/core/log.h"

namespace trainguard {
namespace {

// The longest single wait for NVML's events: bounds how long the destructor waits for the thread.
constexpr std::chrono::milliseconds kEventSlice{500};

}  // namespace

std::string XidMeaning(uint64_t xid) {
  static const std::map<uint64_t, const char*> kMeanings = {
      {13, "graphics engine exception"},
      {31, "GPU memory page fault"},
      {43, "GPU stopped processing"},
      {45, "preemptive cleanup, due to previous errors"},
      {48, "double-bit ECC error"},
      {61, "internal micro-controller breakpoint/warning"},
      {62, "internal micro-controller halt"},
      {63, "ECC page retirement or row remapping recording event"},
      {64, "ECC page retirement or row remapping recording failure"},
      {74, "NVLink error"},
      {79, "GPU has fallen off the bus"},
      {92, "high single-bit ECC error rate"},
      {94, "contained ECC error"},
      {95, "uncontained ECC error"},
      {119, "GSP RPC timeout"},
      {120, "GSP error"},
  };
  const auto it = kMeanings.find(xid);
  return it != kMeanings.end() ? it->second : "see NVIDIA's Xid catalog";
}

GpuWatch::GpuWatch(std::unique_ptr<GpuHealthReader> reader, Metrics* metrics, double period_s)
    : reader_(std::move(reader)), metrics_(metrics), period_s_(period_s), thread_([this] { Run(); }) {}

GpuWatch::~GpuWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stopped_.notify_all();
  thread_.join();
}

std::vector<std::string> GpuWatch::Events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

void GpuWatch::Run() {
  using Clock = std::chrono::steady_clock;
  const std::string gpu = "GPU " + reader_->bus_id();
  bool polling = reader_->events_unavailable().empty();
  if (!polling) LogLine(gpu + ": NVML reports no Xid events for it (" + reader_->events_unavailable() + ")");
  const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(period_s_));
  while (true) {
    ReadHealth();
    const Clock::time_point next = Clock::now() + period;
    while (Clock::now() < next) {
      if (!polling) {
        std::unique_lock<std::mutex> lock(mutex_);
        stopped_.wait_until(lock, next, [this] { return stop_; });
        if (stop_) return;
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
      std::string error;
      for (const GpuEvent& event : reader_->PollEvents(static_cast<int>(std::min(left, kEventSlice).count()), &error))
        Report(event);
      if (!error.empty()) {
        LogLine(gpu + ": waiting for NVML's events failed (" + error + "); its Xid events are no longer reported");
        polling = false;
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_) return;
  }
}

void GpuWatch::ReadHealth() {
  const GpuHealth health = reader_->Read();
  if (metrics_ != nullptr) metrics_->SetGpuHealth(health);
  if (health.error != last_error_ && !health.error.empty())
    LogLine("GPU " + health.bus_id + ": NVML could not read " + health.error);
  last_error_ = health.error;
}

void GpuWatch::Report(const GpuEvent& event) {
  const std::string what = event.kind == GpuEvent::Kind::kXid
                               ? "Xid " + std::to_string(event.xid) + " (" + XidMeaning(event.xid) + ")"
                               : "double-bit (uncorrectable) ECC error";
  const int64_t step = step_.load();
  const std::string line = "GPU " + event.bus_id + ": " + what +
                           (step > 0 ? " after step " + std::to_string(step) : " before the first step");
  LogLine("GPU event: " + line);
  if (metrics_ != nullptr) metrics_->OnGpuEvent(event);
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back(line);
}

}  // namespace trainguard
