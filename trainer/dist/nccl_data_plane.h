// DataPlane over c10d::ProcessGroupNCCL for CUDA tensors. Bootstrapped through MPI: rank 0
// opens a c10d TCPStore on a free port and broadcasts host and port; every rank connects.
// NCCL allows one rank per GPU.
#pragma once

#include <mpi.h>

#include <memory>

#include "trainer/core/wait_guard.h"
#include "trainer/dist/data_plane.h"

namespace trainguard {

// Creates the NCCL data plane for this rank's CUDA device. Collective over `comm`. With a
// guard, waits poll the work so that a fault notice or a deadline ends them (not yet run on a
// GPU: no device was available when this was written).
std::unique_ptr<DataPlane> MakeNcclDataPlane(MPI_Comm comm, int device_index, WaitGuard* guard);

}  // namespace trainguard
