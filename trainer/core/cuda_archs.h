// Whether code built for a list of CUDA architectures runs on a GPU of a given compute
// capability: a cubin built for X.Y runs on X.Z with Z >= Y (same major version); PTX built for
// X.Y is compiled by the driver for any X'.Y' >= X.Y. A GPU that matches neither fails every
// launch with "no kernel image is available for execution on the device".
#pragma once

#include <string>

namespace trainguard {

// `archs` as TORCH_CUDA_ARCH_LIST writes it: "8.0;9.0+PTX" (spaces or semicolons between). Pure.
bool ArchListRuns(const std::string& archs, int major, int minor);

}  // namespace trainguard
