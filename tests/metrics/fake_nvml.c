/* A fake NVML (libfake_nvml.so) for the GpuHealthReader tests: the functions trainguard resolves,
 * with NVML's signatures and codes, answering from environment variables read at each call, so
 * that a test sets a value and reads it back. One GPU:
 *   FAKE_NVML_BUS_ID        its PCI bus id (default 0000:3B:00.0), matched without case
 *   FAKE_NVML_UTIL          utilization, percent (default 50)
 *   FAKE_NVML_MEM_USED, FAKE_NVML_MEM_TOTAL   bytes (default 1 GiB, 80 GiB)
 *   FAKE_NVML_TEMP          degrees Celsius (default 40)
 *   FAKE_NVML_POWER_MW      milliwatts (default 100000)
 *   FAKE_NVML_THROTTLE      throttle reason mask (default 0; strtoull base 0, so 0x44 works)
 *   FAKE_NVML_ECC_CORRECTED, FAKE_NVML_ECC_UNCORRECTED   volatile counts (default 0)
 *   FAKE_NVML_XID           an Xid number: one pending Xid event, delivered once per event set
 *   FAKE_NVML_DBE           set: one pending double-bit ECC event, delivered once per event set
 *   FAKE_NVML_XID_FILE      a file holding an Xid number: one Xid event, delivered once per event
 *                           set once the file exists (a test writes it while a watch thread polls)
 *   FAKE_NVML_INIT_FAIL     an NVML code nvmlInit_v2 returns (9: Driver Not Loaded)
 *   FAKE_NVML_FAIL          an NVML code every device query returns (15: GPU is lost)
 *   FAKE_NVML_NOT_SUPPORTED comma list of util,memory,temp,power,throttle,ecc,dbe_events,events
 *                           answered NOT_SUPPORTED (dbe_events: registering double-bit ECC events)
 *   FAKE_NVML_LOG           a file each nvmlInit_v2, nvmlShutdown, nvmlEventSetCreate and
 *                           nvmlEventSetFree appends its name to, one a line */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef int nvmlReturn_t;
typedef struct nvmlDevice_st* nvmlDevice_t;
typedef struct nvmlEventSet_st* nvmlEventSet_t;
typedef struct {
  unsigned int gpu, memory;
} nvmlUtilization_t;
typedef struct {
  unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType, eventData;
  unsigned int gpuInstanceId, computeInstanceId;
} nvmlEventData_t;

enum { kSuccess = 0, kInvalidArgument = 2, kNotSupported = 3, kNotFound = 6, kTimeout = 10 };
enum { kEventDoubleBitEcc = 0x2, kEventXid = 0x8 };

struct nvmlDevice_st {
  int unused;
};
static struct nvmlDevice_st the_device;

struct nvmlEventSet_st {
  unsigned long long registered; /* event types */
  int xid_delivered, dbe_delivered;
};

static unsigned long long Number(const char* name, unsigned long long fallback) {
  const char* value = getenv(name);
  return value != NULL && *value != '\0' ? strtoull(value, NULL, 0) : fallback;
}

/* Whether FAKE_NVML_NOT_SUPPORTED lists `what`. */
static int Unsupported(const char* what) {
  const char* at = getenv("FAKE_NVML_NOT_SUPPORTED");
  size_t n = strlen(what);
  while (at != NULL && *at != '\0') {
    if (strncmp(at, what, n) == 0 && (at[n] == ',' || at[n] == '\0')) return 1;
    at = strchr(at, ',');
    if (at != NULL) ++at;
  }
  return 0;
}

static void Log(const char* call) {
  const char* path = getenv("FAKE_NVML_LOG");
  FILE* file = path != NULL ? fopen(path, "a") : NULL;
  if (file == NULL) return;
  fprintf(file, "%s\n", call);
  fclose(file);
}

/* The code of a device query: FAKE_NVML_FAIL, NOT_SUPPORTED for `what`, or success. */
static nvmlReturn_t Query(nvmlDevice_t device, const void* out, const char* what) {
  if (device != &the_device || out == NULL) return kInvalidArgument;
  if (getenv("FAKE_NVML_FAIL") != NULL) return (nvmlReturn_t)Number("FAKE_NVML_FAIL", 999);
  return Unsupported(what) ? kNotSupported : kSuccess;
}

nvmlReturn_t nvmlInit_v2(void) {
  Log("nvmlInit_v2");
  return (nvmlReturn_t)Number("FAKE_NVML_INIT_FAIL", kSuccess);
}

nvmlReturn_t nvmlShutdown(void) {
  Log("nvmlShutdown");
  return kSuccess;
}

const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case kSuccess:
      return "Success";
    case kInvalidArgument:
      return "Invalid Argument";
    case kNotSupported:
      return "Not Supported";
    case kNotFound:
      return "Not Found";
    case 9:
      return "Driver Not Loaded";
    case kTimeout:
      return "Timeout";
    case 15:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}

nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char* bus_id, nvmlDevice_t* device) {
  const char* ours = getenv("FAKE_NVML_BUS_ID");
  if (bus_id == NULL || device == NULL) return kInvalidArgument;
  if (strcasecmp(bus_id, ours != NULL ? ours : "0000:3B:00.0") != 0) return kNotFound;
  *device = &the_device;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* utilization) {
  nvmlReturn_t code = Query(device, utilization, "util");
  if (code == kSuccess) {
    utilization->gpu = (unsigned int)Number("FAKE_NVML_UTIL", 50);
    utilization->memory = 10;
  }
  return code;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  nvmlReturn_t code = Query(device, memory, "memory");
  if (code == kSuccess) {
    memory->total = Number("FAKE_NVML_MEM_TOTAL", 80ULL << 30);
    memory->used = Number("FAKE_NVML_MEM_USED", 1ULL << 30);
    memory->free = memory->total - memory->used;
  }
  return code;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int* celsius) {
  nvmlReturn_t code = Query(device, celsius, "temp");
  if (code == kSuccess && sensor != 0) return kInvalidArgument; /* only NVML_TEMPERATURE_GPU */
  if (code == kSuccess) *celsius = (unsigned int)Number("FAKE_NVML_TEMP", 40);
  return code;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts) {
  nvmlReturn_t code = Query(device, milliwatts, "power");
  if (code == kSuccess) *milliwatts = (unsigned int)Number("FAKE_NVML_POWER_MW", 100000);
  return code;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long* reasons) {
  nvmlReturn_t code = Query(device, reasons, "throttle");
  if (code == kSuccess) *reasons = Number("FAKE_NVML_THROTTLE", 0);
  return code;
}

/* error_type 0 corrected, 1 uncorrected; counter_type 0 volatile (the fake has aggregate = 0). */
nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int error_type, int counter_type,
                                         unsigned long long* count) {
  nvmlReturn_t code = Query(device, count, "ecc");
  if (code != kSuccess) return code;
  if (error_type < 0 || error_type > 1 || counter_type < 0 || counter_type > 1) return kInvalidArgument;
  *count = counter_type == 1 ? 0 : Number(error_type == 0 ? "FAKE_NVML_ECC_CORRECTED" : "FAKE_NVML_ECC_UNCORRECTED", 0);
  return kSuccess;
}

nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (set == NULL) return kInvalidArgument;
  if (Unsupported("events")) return kNotSupported;
  *set = calloc(1, sizeof **set);
  Log("nvmlEventSetCreate");
  return *set != NULL ? kSuccess : 999;
}

nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device, unsigned long long types, nvmlEventSet_t set) {
  if (device != &the_device || set == NULL) return kInvalidArgument;
  if ((types & kEventDoubleBitEcc) && Unsupported("dbe_events")) return kNotSupported;
  set->registered |= types;
  return kSuccess;
}

nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data, unsigned int timeout_ms) {
  if (set == NULL || data == NULL) return kInvalidArgument;
  if (getenv("FAKE_NVML_FAIL") != NULL) return (nvmlReturn_t)Number("FAKE_NVML_FAIL", 999);
  memset(data, 0, sizeof *data);
  data->device = &the_device;
  if ((set->registered & kEventXid) && getenv("FAKE_NVML_XID") != NULL && !set->xid_delivered) {
    set->xid_delivered = 1;
    data->eventType = kEventXid;
    data->eventData = Number("FAKE_NVML_XID", 0);
    return kSuccess;
  }
  if ((set->registered & kEventXid) && getenv("FAKE_NVML_XID_FILE") != NULL && !set->xid_delivered) {
    FILE* file = fopen(getenv("FAKE_NVML_XID_FILE"), "r");
    unsigned long long xid = 0;
    if (file != NULL && fscanf(file, "%llu", &xid) == 1) {
      fclose(file);
      set->xid_delivered = 1;
      data->eventType = kEventXid;
      data->eventData = xid;
      return kSuccess;
    }
    if (file != NULL) fclose(file);
  }
  if ((set->registered & kEventDoubleBitEcc) && getenv("FAKE_NVML_DBE") != NULL && !set->dbe_delivered) {
    set->dbe_delivered = 1;
    data->eventType = kEventDoubleBitEcc;
    return kSuccess;
  }
  struct timespec wait = {(time_t)(timeout_ms / 1000), (long)(timeout_ms % 1000) * 1000000L};
  nanosleep(&wait, NULL);
  return kTimeout;
}

nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  if (set == NULL) return kInvalidArgument;
  free(set);
  Log("nvmlEventSetFree");
  return kSuccess;
}
