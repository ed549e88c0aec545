// What kind of failure an exception thrown inside a training step is, and the report of the two
// kinds that are neither the data's nor trainguard's doing: out of memory (the batch does not fit)
// and a GPU fault (the hardware failed). Each has its own exit code, so that a scheduler can tell
// "lower --batch-size" and "try another node" from "a bug in trainguard" (exit 1).
#pragma once

#include <torch/torch.h>

#include <exception>
#include <string>

#include "trainer/core/config.h"
#include "trainer/core/errors.h"

namespace trainguard {

// By type and CUDA error code: a device-side assert; an out-of-memory (c10's OutOfMemoryError, a
// failed host allocation, cudaErrorMemoryAllocation, cuBLAS/cuDNN allocation failures); a GPU
// fault (illegal address or instruction, launch failure, uncorrectable ECC error, a device gone);
// an index out of range on the CPU (a target outside [0, C)) is the batch's data; anything else
// is internal.
ErrorKind ClassifyStepError(const std::exception& e);

// Whether `e` says an allocation failed, on the GPU or the host.
bool IsOutOfMemory(const std::exception& e);

// One line for an out-of-memory failure at `step` on a batch of `images` (N, C, H, W): the batch
// size per rank, the image shape and precision; the memory figures (on a GPU the caching allocator's allocated,
// reserved and peak bytes and the device's total; on the CPU the resident size and the limit); what to try.
std::string OutOfMemoryReport(const TrainConfig& config, torch::Device device, int64_t step,
                              const torch::Tensor& images, const std::string& error);

// The memory figures of `device`: on a GPU the caching allocator's allocated, reserved and peak
// bytes and the device's total; on the CPU this process's resident size and its limit.
std::string MemoryFigures(torch::Device device);

// One line for an allocation that failed outside a training step (building the model, an
// evaluation, the loader): the figures and what to try.
std::string OutOfMemoryElsewhere(torch::Device device, const std::string& error);

// The GPU's PCI bus id ("0000:3b:00.0"), read while the device is healthy (Torch caches the
// properties, so a later report can still name it); "" on the CPU.
std::string GpuBusId(torch::Device device);

// One line for a GPU fault: the host, the GPU and its bus id, the CUDA error, what to do.
std::string GpuFaultReport(const std::string& host, torch::Device device, const std::string& bus_id,
                           const std::string& error);

}  // namespace trainguard
