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

// c10d's own collective timeout for a --step-timeout: later by a margin (the step timeout again,
// at least 60 s), so that a late rank is always trainguard's stall verdict (exit 11, naming the
// rank) and never, by a race between the two clocks, c10d's communication error (exit 5).
double NcclTimeoutFor(double step_timeout_s);

// Sets the environment the data planes read (the c10d policy: SetNcclProcessPolicy). Call first
// in main(), before any thread exists: setenv races with every thread that reads the
// environment, and MPI, the metrics endpoint and the watchdogs all start threads.
void SetDataPlaneEnvironment();

// Collective over MPI_COMM_WORLD (and `control`, for the NCCL bootstrap). Waits poll `guard`.
// Throws ConfigError when the build cannot make the plane asked for.
std::unique_ptr<DataPlane> MakeDataPlane(const TrainConfig& config, torch::Device device, ControlPlane& control,
                                         WaitGuard* guard);

}  // namespace trainguard
