// The data plane: tensor collectives for gradients and weights. Implementations: MPI on CPU
// tensors (mpi_data_plane.h), c10d ProcessGroupNCCL on CUDA tensors (nccl_data_plane.h), and
// SoloDataPlane for one process. Every rank must issue the same calls in the same order.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace trainguard {

// An all-reduce in flight. Wait() returns when the result is in the tensor.
class PendingReduce {
 public:
  virtual ~PendingReduce() = default;
  virtual void Wait() = 0;
};

class DataPlane {
 public:
  virtual ~DataPlane() = default;
  // Starts an in-place element-wise sum across ranks of a dense tensor (contiguous in some
  // memory layout, the same on every rank). The tensor must stay alive and untouched until
  // Wait() returns.
  virtual std::unique_ptr<PendingReduce> StartSum(torch::Tensor tensor) = 0;
  // Replaces the dense tensor (same layout on every rank) with root's values; blocks.
  virtual void Broadcast(torch::Tensor tensor, int root) = 0;
  // Releases the plane's resources at a normal end; every rank calls it.
  virtual void Shutdown() {}
  // Tears the plane down on a failure path, alone (peers may be gone, the device may be
  // unusable after a device-side assert); returns within `deadline_s` even if the library blocks.
  virtual void Abort(double deadline_s) {}
};

// An all-reduce that finished when it started.
class CompletedReduce final : public PendingReduce {
 public:
  void Wait() override {}
};

// World of one: the sum of one rank is its own value.
class SoloDataPlane final : public DataPlane {
 public:
  std::unique_ptr<PendingReduce> StartSum(torch::Tensor) override { return std::make_unique<CompletedReduce>(); }
  void Broadcast(torch::Tensor, int) override {}
};

}  // namespace trainguard
