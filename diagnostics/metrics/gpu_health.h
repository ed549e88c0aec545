// GPU health of one device through NVML (utilization, memory, temperature, power, clock
// throttling, ECC counts, and Xid / double-bit ECC events), for the metrics of the rank that
// uses it. NVML is loaded at run time with dlopen, so that a machine without NVIDIA's driver
// needs nothing and only learns, as a reason, that there is no GPU health to read. Pure: no
// Torch, no CUDA headers, no MPI.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace trainguard {

// A clock throttle reason: its bit in NVML's throttle reason mask and the name it has in
// trainguard_gpu_throttled{reason}.
struct ThrottleReason {
  uint64_t bit;
  const char* name;
};

// The throttle reasons trainguard names (nvmlClocksThrottleReason*); other bits are not shown.
extern const ThrottleReason kThrottleReasons[9];

// One reading of a GPU. A value the device does not report (NVML answers NOT_SUPPORTED) or that
// failed to read is left out.
struct GpuHealth {
  std::string bus_id;                          // the PCI bus id the reader was opened for
  std::optional<double> utilization_ratio;     // 0-1: share of NVML's last sample period a kernel ran
  std::optional<uint64_t> memory_used_bytes;   // device memory in use, by every process
  std::optional<uint64_t> memory_total_bytes;  // device memory in all
  std::optional<double> temperature_celsius;   // the GPU die's
  std::optional<double> power_watts;           // the board's draw now
  std::optional<uint64_t> throttle_reasons;    // mask of the kThrottleReasons bits now in effect
  std::optional<uint64_t> ecc_corrected;       // volatile counts: since the driver last loaded
  std::optional<uint64_t> ecc_uncorrected;
  // The queries that failed other than by NOT_SUPPORTED, each "function: NVML's message",
  // joined by "; "; empty when none did.
  std::string error;
};

// An event NVML delivered for the device.
struct GpuEvent {
  enum class Kind { kXid, kDoubleBitEcc };
  std::string bus_id;  // the PCI bus id the reader was opened for
  Kind kind = Kind::kXid;
  uint64_t xid = 0;  // the Xid number of a kXid event (NVML's eventData); 0 for kDoubleBitEcc
};

// Reads one GPU's health through NVML. Read() and PollEvents() may run on two threads at once;
// PollEvents() on one thread at a time. Never throws past Open (bad_alloc aside).
class GpuHealthReader {
 public:
  // The NVML library of NVIDIA's driver, found by the dynamic loader's search.
  static constexpr const char* kNvmlLibrary = "libnvidia-ml.so.1";

  // Loads `library` (a name for the loader's search, or a path), initializes NVML and finds the
  // GPU whose PCI bus id is `bus_id` ("0000:3B:00.0", as CUDA and nvidia-smi write it). Returns
  // null and sets *why_not (when not null) to a reason naming the library or the bus id when the
  // library cannot be loaded or lacks NVML's functions, nvmlInit fails (NVML's own message) or
  // there is no such GPU. Also registers for Xid and double-bit ECC events; a device without
  // them still opens (see events_unavailable()).
  static std::unique_ptr<GpuHealthReader> Open(const std::string& bus_id, const std::string& library,
                                               std::string* why_not);
  // Frees the event set, shuts NVML down (once per successful nvmlInit) and unloads the library.
  ~GpuHealthReader();
  GpuHealthReader(const GpuHealthReader&) = delete;
  GpuHealthReader& operator=(const GpuHealthReader&) = delete;

  // Reads every value now: a few NVML queries, each a driver call of well under a millisecond.
  GpuHealth Read() const;
  // Waits up to timeout_ms (0: not at all) for the device's first event, then takes those already
  // pending too (at most 64). Returns the events in NVML's order, or none at the deadline. Returns
  // at once with none when events are unavailable. When the wait fails other than by timing out,
  // returns what it has and sets *error (when not null) to NVML's message; else clears it.
  std::vector<GpuEvent> PollEvents(int timeout_ms, std::string* error = nullptr);
  // "" when PollEvents can report events, else why not (NVML's message).
  const std::string& events_unavailable() const;
  const std::string& bus_id() const;

 private:
  struct Nvml;  // the library's handle, its functions (dlsym), the device and the event set
  explicit GpuHealthReader(std::unique_ptr<Nvml> nvml);
  std::unique_ptr<Nvml> nvml_;
};

}  // namespace trainguard
