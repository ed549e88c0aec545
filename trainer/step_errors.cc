// Classes of step failures and their reports (see step_errors.h).
#include "trainer/step_errors.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdio>
#include <new>

#include "trainer/core/host_memory.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

// cudaError_t values (driver_types.h), kept here so that the classification needs no CUDA header.
constexpr int32_t kCudaErrorMemoryAllocation = 2;
constexpr int32_t kCudaErrorDevicesUnavailable = 46;
constexpr int32_t kCudaErrorEccUncorrectable = 214;
constexpr int32_t kCudaErrorIllegalAddress = 700;
constexpr int32_t kCudaErrorLaunchTimeout = 702;
constexpr int32_t kCudaErrorAssert = 710;
constexpr int32_t kCudaErrorHardwareStackError = 714;
constexpr int32_t kCudaErrorIllegalInstruction = 715;
constexpr int32_t kCudaErrorMisalignedAddress = 716;
constexpr int32_t kCudaErrorInvalidAddressSpace = 717;
constexpr int32_t kCudaErrorInvalidPc = 718;
constexpr int32_t kCudaErrorLaunchFailure = 719;

bool IsGpuFaultCode(int32_t code) {
  switch (code) {
    case kCudaErrorDevicesUnavailable:
    case kCudaErrorEccUncorrectable:
    case kCudaErrorIllegalAddress:
    case kCudaErrorLaunchTimeout:
    case kCudaErrorHardwareStackError:
    case kCudaErrorIllegalInstruction:
    case kCudaErrorMisalignedAddress:
    case kCudaErrorInvalidAddressSpace:
    case kCudaErrorInvalidPc:
    case kCudaErrorLaunchFailure:
      return true;
    default:
      return false;
  }
}

std::string Figure(const char* what, int64_t bytes) { return std::string(what) + " " + Bytes(bytes); }

}  // namespace

bool IsOutOfMemory(const std::exception& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e) || dynamic_cast<const std::bad_alloc*>(&e)) return true;
  if (const auto* accelerator = dynamic_cast<const c10::AcceleratorError*>(&e)) {
    return accelerator->get_error_code() == kCudaErrorMemoryAllocation;
  }
  // The host allocator and cuBLAS/cuDNN workspaces raise plain c10::Errors.
  const std::string what = e.what();
  return what.find("DefaultCPUAllocator: can't allocate memory") != std::string::npos ||
         what.find("_STATUS_ALLOC_FAILED") != std::string::npos;
}

ErrorKind ClassifyStepError(const std::exception& e) {
  if (IsOutOfMemory(e)) return ErrorKind::kOutOfMemory;
  if (const auto* accelerator = dynamic_cast<const c10::AcceleratorError*>(&e)) {
    const int32_t code = accelerator->get_error_code();
    if (code == kCudaErrorAssert) return ErrorKind::kDeviceAssert;
    if (IsGpuFaultCode(code)) return ErrorKind::kGpuFault;
    return ErrorKind::kInternal;
  }
  if (dynamic_cast<const c10::IndexError*>(&e)) return ErrorKind::kBatchData;
  return ErrorKind::kInternal;
}

std::string MemoryFigures(torch::Device device) {
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    const auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const auto* properties = at::cuda::getDeviceProperties(device.index());
    return Figure("allocated", stats.allocated_bytes[all].current) + ", " +
           Figure("reserved", stats.reserved_bytes[all].current) + ", " +
           Figure("peak", stats.allocated_bytes[all].peak) + " of the device's " +
           Bytes(static_cast<int64_t>(properties->totalGlobalMem));
  }
  const HostMemory m = ReadHostMemory();
  return "resident " + Bytes(m.resident_bytes) +
         (m.limit_bytes > 0 ? " under a " + Bytes(m.limit_bytes) + " " + m.limit_source : "");
}

std::string OutOfMemoryElsewhere(torch::Device device, const std::string& error) {
  return "out of " + std::string(device.is_cuda() ? "GPU" : "host") + " memory outside a training step (" +
         MemoryFigures(device) + "): lower --batch-size, or give the job more memory (" + FirstLine(error) + ")";
}

std::string OutOfMemoryReport(const TrainConfig& config, torch::Device device, int64_t step,
                              const torch::Tensor& images, const std::string& error) {
  const std::string figures = MemoryFigures(device);
  std::string shape;
  for (int64_t d = 1; d < images.dim(); ++d) shape += (d > 1 ? "x" : "") + std::to_string(images.size(d));
  const bool bf16 = config.precision == "bf16";
  const int64_t half = std::max<int64_t>(1, config.batch_size / 2);
  return "out of " + std::string(device.is_cuda() ? "GPU" : "host") + " memory in step " + std::to_string(step) +
         " with --batch-size " + std::to_string(config.batch_size) + " per rank of " + shape + " images, --precision " +
         config.precision + " (" + figures + "): try " + "--batch-size " + std::to_string(half) +
         (bf16 || !device.is_cuda() ? "" : " or --precision bf16") + " (" + FirstLine(error) + ")";
}

std::string GpuBusId(torch::Device device) {
  if (!device.is_cuda()) return "";
  const auto* p = at::cuda::getDeviceProperties(device.index());
  char id[32];
  std::snprintf(id, sizeof id, "%04x:%02x:%02x.0", p->pciDomainID, p->pciBusID, p->pciDeviceID);
  return id;
}

std::string GpuFaultReport(const std::string& host, torch::Device device, const std::string& bus_id,
                           const std::string& error) {
  return "GPU fault on host " + host + ", " + device.str() + " (bus id " + (bus_id.empty() ? "?" : bus_id) +
         "): " + FirstLine(error) +
         "; the GPU or its node failed, not the data: check the node (nvidia-smi -q, the kernel log's Xid lines) "
         "and rerun elsewhere (slurm/ requeues the job without this node)";
}

}  // namespace trainguard
