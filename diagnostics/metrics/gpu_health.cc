// GpuHealthReader: NVML loaded with dlopen, its functions resolved with dlsym, one device's
// values read into a GpuHealth and its events polled. See gpu_health.h.
#include "diagnostics/metrics/gpu_health.h"

#include <dlfcn.h>

#include <utility>

namespace trainguard {

const ThrottleReason kThrottleReasons[9] = {{0x1, "gpu_idle"},
                                            {0x2, "applications_clocks_setting"},
                                            {0x4, "sw_power_cap"},
                                            {0x8, "hw_slowdown"},
                                            {0x10, "sync_boost"},
                                            {0x20, "sw_thermal_slowdown"},
                                            {0x40, "hw_thermal_slowdown"},
                                            {0x80, "hw_power_brake_slowdown"},
                                            {0x100, "display_clock_setting"}};

namespace {

// NVML's types, constants and functions as NVML's public nvml.h declares them, so that trainguard
// builds without NVIDIA's headers: these follow nvml.h's C ABI (its enum parameters are C enums,
// passed as int; its handles are pointers to opaque structs).
using nvmlReturn_t = int;
struct nvmlDevice_st;
using nvmlDevice_t = nvmlDevice_st*;
struct nvmlEventSet_st;
using nvmlEventSet_t = nvmlEventSet_st*;
struct nvmlUtilization_t {
  unsigned int gpu;     // percent of the sample period a kernel ran
  unsigned int memory;  // percent of it device memory was read or written
};
struct nvmlMemory_t {  // bytes
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
struct nvmlEventData_t {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;  // the Xid number of an Xid event
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlNotSupported = 3;
constexpr nvmlReturn_t kNvmlTimeout = 10;
constexpr int kNvmlTemperatureGpu = 0;                      // nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU
constexpr int kNvmlCorrectedError = 0;                      // nvmlMemoryErrorType_t
constexpr int kNvmlUncorrectedError = 1;                    // nvmlMemoryErrorType_t
constexpr int kNvmlVolatileEcc = 0;                         // nvmlEccCounterType_t NVML_VOLATILE_ECC
constexpr unsigned long long kNvmlEventDoubleBitEcc = 0x2;  // nvmlEventTypeDoubleBitEccError
constexpr unsigned long long kNvmlEventXid = 0x8;           // nvmlEventTypeXidCriticalError
constexpr int kMaxEventsPerPoll = 64;

}  // namespace

struct GpuHealthReader::Nvml {
  std::string bus_id;
  std::string library_name;
  void* library = nullptr;
  bool initialized = false;
  nvmlDevice_t device = nullptr;
  nvmlEventSet_t events = nullptr;
  std::string events_unavailable;

  // Required: without these there is no device to read.
  nvmlReturn_t (*init)() = nullptr;
  nvmlReturn_t (*shutdown)() = nullptr;
  const char* (*error_string)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*handle_by_bus_id)(const char*, nvmlDevice_t*) = nullptr;
  // Optional: a function the library lacks reads as NOT_SUPPORTED.
  nvmlReturn_t (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  nvmlReturn_t (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*power)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*throttle)(nvmlDevice_t, unsigned long long*) = nullptr;
  nvmlReturn_t (*ecc)(nvmlDevice_t, int, int, unsigned long long*) = nullptr;
  nvmlReturn_t (*event_set_create)(nvmlEventSet_t*) = nullptr;
  nvmlReturn_t (*register_events)(nvmlDevice_t, unsigned long long, nvmlEventSet_t) = nullptr;
  nvmlReturn_t (*event_set_wait)(nvmlEventSet_t, nvmlEventData_t*, unsigned int) = nullptr;
  nvmlReturn_t (*event_set_free)(nvmlEventSet_t) = nullptr;

  ~Nvml() {
    if (events != nullptr) event_set_free(events);
    if (initialized) shutdown();
    if (library != nullptr) ::dlclose(library);
  }

  // "function: NVML's message (code N)".
  std::string Failure(const char* function, nvmlReturn_t code) const {
    const char* message = error_string(code);
    return std::string(function) + ": " + (message != nullptr ? message : "unknown error") + " (NVML code " +
           std::to_string(code) + ")";
  }

  // Resolves `name` into *function; returns false when the library lacks it.
  template <typename F>
  bool Resolve(const char* name, F* function) {
    *function = reinterpret_cast<F>(::dlsym(library, name));
    return *function != nullptr;
  }

  // Registers for Xid and double-bit ECC events, or for Xid events alone when the device has no
  // ECC; on failure leaves `events` null and says why in events_unavailable.
  void OpenEvents() {
    if (event_set_create == nullptr || register_events == nullptr || event_set_wait == nullptr ||
        event_set_free == nullptr) {
      events_unavailable = library_name + " lacks NVML's event functions";
      return;
    }
    nvmlReturn_t code = event_set_create(&events);
    if (code != kNvmlSuccess) {
      events = nullptr;
      events_unavailable = Failure("nvmlEventSetCreate", code);
      return;
    }
    code = register_events(device, kNvmlEventXid | kNvmlEventDoubleBitEcc, events);
    if (code == kNvmlNotSupported) code = register_events(device, kNvmlEventXid, events);
    if (code != kNvmlSuccess) {
      events_unavailable = Failure("nvmlDeviceRegisterEvents", code);
      event_set_free(events);
      events = nullptr;
    }
  }
};

std::unique_ptr<GpuHealthReader> GpuHealthReader::Open(const std::string& bus_id, const std::string& library,
                                                       std::string* why_not) {
  auto refuse = [why_not](const std::string& why) -> std::unique_ptr<GpuHealthReader> {
    if (why_not != nullptr) *why_not = why + "; this rank reports no GPU health";
    return nullptr;
  };
  auto nvml = std::make_unique<Nvml>();
  nvml->bus_id = bus_id;
  nvml->library_name = library;
  nvml->library = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (nvml->library == nullptr) {
    const char* error = ::dlerror();
    return refuse("cannot load the NVML library " + library + ": " + (error != nullptr ? error : "unknown error") +
                  " (NVIDIA's driver installs it; a machine without NVIDIA GPUs has none)");
  }
  Nvml& n = *nvml;
  const bool complete = n.Resolve("nvmlInit_v2", &n.init) && n.Resolve("nvmlShutdown", &n.shutdown) &&
                        n.Resolve("nvmlErrorString", &n.error_string) &&
                        n.Resolve("nvmlDeviceGetHandleByPciBusId_v2", &n.handle_by_bus_id);
  if (!complete) {
    const char* error = ::dlerror();
    return refuse("the library " + library + " is not NVML, or too old: " +
                  (error != nullptr ? error : "a function is missing") + " (update NVIDIA's driver)");
  }
  n.Resolve("nvmlDeviceGetUtilizationRates", &n.utilization);
  n.Resolve("nvmlDeviceGetMemoryInfo", &n.memory);
  n.Resolve("nvmlDeviceGetTemperature", &n.temperature);
  n.Resolve("nvmlDeviceGetPowerUsage", &n.power);
  n.Resolve("nvmlDeviceGetCurrentClocksThrottleReasons", &n.throttle);
  n.Resolve("nvmlDeviceGetTotalEccErrors", &n.ecc);
  n.Resolve("nvmlEventSetCreate", &n.event_set_create);
  n.Resolve("nvmlDeviceRegisterEvents", &n.register_events);
  n.Resolve("nvmlEventSetWait_v2", &n.event_set_wait);
  n.Resolve("nvmlEventSetFree", &n.event_set_free);

  const nvmlReturn_t init = n.init();
  if (init != kNvmlSuccess) {
    return refuse("NVML (" + library + ") did not start: " + n.Failure("nvmlInit_v2", init) +
                  " (check the driver with nvidia-smi)");
  }
  n.initialized = true;
  const nvmlReturn_t found = n.handle_by_bus_id(bus_id.c_str(), &n.device);
  if (found != kNvmlSuccess) {
    return refuse("no GPU with PCI bus id '" + bus_id + "': " + n.Failure("nvmlDeviceGetHandleByPciBusId_v2", found) +
                  " (nvidia-smi --query-gpu=pci.bus_id --format=csv lists this machine's)");
  }
  n.OpenEvents();
  return std::unique_ptr<GpuHealthReader>(new GpuHealthReader(std::move(nvml)));
}

GpuHealthReader::GpuHealthReader(std::unique_ptr<Nvml> nvml) : nvml_(std::move(nvml)) {}

GpuHealthReader::~GpuHealthReader() = default;

GpuHealth GpuHealthReader::Read() const {
  const Nvml& n = *nvml_;
  GpuHealth health;
  health.bus_id = n.bus_id;
  // True when `code` is a success; records a failure other than NOT_SUPPORTED in health.error.
  auto ok = [&](const char* function, nvmlReturn_t code) {
    if (code == kNvmlSuccess) return true;
    if (code != kNvmlNotSupported) health.error += (health.error.empty() ? "" : "; ") + n.Failure(function, code);
    return false;
  };
  nvmlUtilization_t utilization{};
  if (n.utilization != nullptr && ok("nvmlDeviceGetUtilizationRates", n.utilization(n.device, &utilization))) {
    health.utilization_ratio = utilization.gpu / 100.0;
  }
  nvmlMemory_t memory{};
  if (n.memory != nullptr && ok("nvmlDeviceGetMemoryInfo", n.memory(n.device, &memory))) {
    health.memory_used_bytes = memory.used;
    health.memory_total_bytes = memory.total;
  }
  unsigned int celsius = 0;
  if (n.temperature != nullptr &&
      ok("nvmlDeviceGetTemperature", n.temperature(n.device, kNvmlTemperatureGpu, &celsius))) {
    health.temperature_celsius = celsius;
  }
  unsigned int milliwatts = 0;
  if (n.power != nullptr && ok("nvmlDeviceGetPowerUsage", n.power(n.device, &milliwatts))) {
    health.power_watts = milliwatts / 1000.0;
  }
  unsigned long long reasons = 0;
  if (n.throttle != nullptr && ok("nvmlDeviceGetCurrentClocksThrottleReasons", n.throttle(n.device, &reasons))) {
    health.throttle_reasons = reasons;
  }
  unsigned long long count = 0;
  if (n.ecc != nullptr &&
      ok("nvmlDeviceGetTotalEccErrors", n.ecc(n.device, kNvmlCorrectedError, kNvmlVolatileEcc, &count))) {
    health.ecc_corrected = count;
  }
  if (n.ecc != nullptr &&
      ok("nvmlDeviceGetTotalEccErrors", n.ecc(n.device, kNvmlUncorrectedError, kNvmlVolatileEcc, &count))) {
    health.ecc_uncorrected = count;
  }
  return health;
}

std::vector<GpuEvent> GpuHealthReader::PollEvents(int timeout_ms, std::string* error) {
  Nvml& n = *nvml_;
  if (error != nullptr) error->clear();
  std::vector<GpuEvent> events;
  if (n.events == nullptr) return events;
  unsigned int wait_ms = timeout_ms > 0 ? static_cast<unsigned int>(timeout_ms) : 0;
  for (int taken = 0; taken < kMaxEventsPerPoll; ++taken) {
    nvmlEventData_t data{};
    const nvmlReturn_t code = n.event_set_wait(n.events, &data, wait_ms);
    if (code == kNvmlTimeout) break;
    if (code != kNvmlSuccess) {
      if (error != nullptr) *error = n.Failure("nvmlEventSetWait_v2", code);
      break;
    }
    wait_ms = 0;  // the first event came: take only those already pending
    GpuEvent event;
    event.bus_id = n.bus_id;
    if (data.eventType & kNvmlEventXid) {
      event.kind = GpuEvent::Kind::kXid;
      event.xid = data.eventData;
    } else if (data.eventType & kNvmlEventDoubleBitEcc) {
      event.kind = GpuEvent::Kind::kDoubleBitEcc;
    } else {
      continue;  // a type this reader did not register for
    }
    events.push_back(event);
  }
  return events;
}

const std::string& GpuHealthReader::events_unavailable() const { return nvml_->events_unavailable; }

const std::string& GpuHealthReader::bus_id() const { return nvml_->bus_id; }

}  // namespace trainguard
