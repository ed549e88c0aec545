// What trainguard was built with and runs with, and the machine it runs on: for --version,
// `trainguard env` (the block a bug report needs) and every repro bundle (environment.txt).
#pragma once

#include <string>

namespace trainguard {

// trainguard's version and git commit; the versions it was built with and runs with: libtorch,
// the CUDA runtime and driver, cuDNN, NCCL, OpenMPI, prometheus-cpp, libjpeg-turbo, CLI11.
std::string VersionText();

// VersionText, then the host, the CPUs this process may use, memory and its limit, the GPUs
// (name, compute capability, memory, bus id; "none" without one), the driver, the MPI rank
// layout when started by mpirun or srun, and the scheduler and trainguard variables that are set.
// Starts no MPI; reads CUDA only through Torch.
std::string EnvironmentReport();

}  // namespace trainguard
