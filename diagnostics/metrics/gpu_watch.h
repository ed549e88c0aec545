// GpuWatch: one rank's GPU watched on a thread of its own while the rank trains. Every period it
// reads the GPU's health (GpuHealthReader) into the metrics; between readings it waits for NVML's
// events, and reports each Xid or double-bit (uncorrectable) ECC event at once: counted in the
// metrics, logged with the step the rank had reached, and kept, so that the repro bundle of a
// failure that follows carries it (a GPU that faults often logs its Xid just before the step's
// CUDA error). Pure: no Torch, no CUDA, no MPI.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/metrics/gpu_health.h"
#include "diagnostics/metrics/metrics.h"

namespace trainguard {

// What an Xid number means, in NVIDIA's words (its Xid catalog), for the common ones; "see
// NVIDIA's Xid catalog" for the others.
std::string XidMeaning(uint64_t xid);

class GpuWatch {
 public:
  // Starts the thread. `metrics` may be null (the events are still logged and kept).
  // `period_s`: seconds between health readings (and the longest wait for a stop).
  GpuWatch(std::unique_ptr<GpuHealthReader> reader, Metrics* metrics, double period_s);
  // Stops the thread (within half a second: it waits for events in slices) and joins it.
  ~GpuWatch();
  GpuWatch(const GpuWatch&) = delete;
  GpuWatch& operator=(const GpuWatch&) = delete;

  // The last step this rank finished (0: none yet); the events name it. Thread-safe.
  void SetStep(int64_t global_step) { step_.store(global_step); }
  // Every event reported so far, one line each, as logged: "GPU 0000:3b:00.0: Xid 79 (GPU has
  // fallen off the bus) after step 12". Thread-safe.
  std::vector<std::string> Events() const;

 private:
  void Run();
  void Report(const GpuEvent& event);
  // Sets the reading into the metrics; logs a reading's failed queries when they change.
  void ReadHealth();

  std::unique_ptr<GpuHealthReader> reader_;
  Metrics* metrics_;
  const double period_s_;
  std::atomic<int64_t> step_{0};
  mutable std::mutex mutex_;  // guards events_, stop_
  std::condition_variable stopped_;
  bool stop_ = false;
  std::vector<std::string> events_;
  std::string last_error_;  // the watch thread's: the last reading's failed queries
  std::thread thread_;
};

}  // namespace trainguard
