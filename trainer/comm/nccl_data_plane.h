// DataPlane over c10d::ProcessGroupNCCL for CUDA tensors, bootstrapped through the TCPStore of
// store_bootstrap.h. NCCL allows one rank per GPU. The plane's waits, shutdown and abort are written
// against c10d::Backend (MakeBackendDataPlane), so that tests drive them with a fake backend.
#pragma once

#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <memory>
#include <string>

#include "trainer/comm/data_plane.h"
#include "trainer/core/control_plane.h"
#include "trainer/core/wait_guard.h"

namespace c10d {
class Backend;
}  // namespace c10d

namespace trainguard {

struct NcclPlaneOptions {
  int device_index = 0;     // this rank's CUDA device
  double timeout_s = 360;   // c10d's own collective timeout (NcclTimeoutFor: after trainguard's stall verdict)
  std::string store_addr;   // address the other ranks reach rank 0's TCPStore at (empty: rank 0's IP)
  uint16_t store_port = 0;  // TCP port of rank 0's TCPStore (0: any free port)
};

// The c10d process-group policy trainguard needs, set in the environment before any thread
// exists (main(), through SetDataPlaneEnvironment), unless the user set a variable: the c10d watchdog must neither
// rethrow a CUDA error nor tear the process down (the fault flow writes a bundle, diagnoses it and decides the exit
// code), and its heartbeat monitor must not abort a rank that is diagnosing.
void SetNcclProcessPolicy();

// Creates the NCCL data plane for this rank's CUDA device. Collective over `control`, which
// carries the store's address. With a guard, waits poll the work so that a fault notice or a
// deadline ends them.
std::unique_ptr<DataPlane> MakeNcclDataPlane(ControlPlane& control, const NcclPlaneOptions& options, WaitGuard* guard);

// The plane over a c10d backend that exists (MakeNcclDataPlane passes its ProcessGroupNCCL):
// StartSum and Broadcast issue the backend's allreduce and broadcast; with a guard, a wait polls
// the work's isCompleted() and calls guard->Check() between polls (BeginWait first), so a fault
// notice or a deadline ends it; then work.wait() rethrows the work's own failure. Shutdown()
// calls backend->shutdown(); Abort(d) calls backend->abort() on a detached thread and returns
// after at most d seconds.
std::unique_ptr<DataPlane> MakeBackendDataPlane(c10::intrusive_ptr<c10d::Backend> backend, WaitGuard* guard);

}  // namespace trainguard
