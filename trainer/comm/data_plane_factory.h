// Which data plane carries the gradients, and making it: NCCL on CUDA (unless --data-plane
// mpi), MPI otherwise (CUDA tensors staged through host memory), nothing in a world of one on
// MPI.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "trainer/comm/data_plane.h"
#include "trainer/core/config.h"
#include "trainer/core/control_plane.h"
#include "trainer/core/wait_guard.h"

namespace trainguard {

// Whether gradients go through NCCL: on CUDA, unless --data-plane mpi.
bool UsesNccl(const TrainConfig& config, torch::Device device);

// Collective over MPI_COMM_WORLD (and `control`, for the NCCL bootstrap). Waits poll `guard`.
// Throws ConfigError when the build cannot make the plane asked for.
std::unique_ptr<DataPlane> MakeDataPlane(const TrainConfig& config, torch::Device device, ControlPlane& control,
                                         WaitGuard* guard);

}  // namespace trainguard
