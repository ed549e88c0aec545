// The data plane factory (see data_plane_factory.h).
#include "trainer/comm/data_plane_factory.h"

#include <algorithm>

#include "trainer/comm/mpi_data_plane.h"
#include "trainer/core/errors.h"
#ifdef TRAINGUARD_WITH_NCCL
#include "trainer/comm/nccl_data_plane.h"
#endif

namespace trainguard {

bool UsesNccl(const TrainConfig& config, torch::Device device) {
  return device.is_cuda() && config.data_plane != "mpi";
}

double NcclTimeoutFor(double step_timeout_s) { return step_timeout_s + std::max(60.0, step_timeout_s); }

void SetDataPlaneEnvironment() {
#ifdef TRAINGUARD_WITH_NCCL
  SetNcclProcessPolicy();
#endif
}

std::unique_ptr<DataPlane> MakeDataPlane(const TrainConfig& config, torch::Device device, ControlPlane& control,
                                         WaitGuard* guard) {
  if (UsesNccl(config, device)) {
#ifdef TRAINGUARD_WITH_NCCL
    return MakeNcclDataPlane(control,
                             {device.index(), NcclTimeoutFor(config.step_timeout), config.store_addr,
                              static_cast<uint16_t>(config.store_port)},
                             guard);
#else
    throw ConfigError(
        "--device cuda: this build has no NCCL data plane; rebuild against a CUDA Torch, or pass "
        "--data-plane mpi");
#endif
  }
  if (control.world() == 1) return std::make_unique<SoloDataPlane>();
  auto plane = std::make_unique<MpiDataPlane>(MPI_COMM_WORLD);
  plane->set_wait_guard(guard);
  return plane;
}

}  // namespace trainguard
