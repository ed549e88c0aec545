// TG_MPI_CHECK: every MPI call goes through it. On failure it throws CommError carrying the
// host, pid, rank, file:line, the call and MPI's own error string.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "trainer/core/wait_guard.h"

namespace trainguard {

// Throws CommError when rc != MPI_SUCCESS.
void CheckMpi(int rc, const char* call, const char* file, int line);

// Completes `request`. Without a guard it blocks in MPI_Wait; with one it polls MPI_Test and
// calls guard->Check() between polls, so that a fault notice or a deadline ends the wait (the
// exception leaves the request pending: the process is then expected to exit).
void WaitFor(MPI_Request& request, WaitGuard* guard);

// WaitFor for a request whose buffers `buffers` owns: when the wait is given up, the buffers are
// kept (KeepUntilExit), since MPI may still write into them after the caller has unwound.
void WaitFor(MPI_Request& request, WaitGuard* guard, std::shared_ptr<void> buffers);

// Keeps `buffers` alive until the process ends: for the buffers of a request left pending.
void KeepUntilExit(std::shared_ptr<void> buffers);

}  // namespace trainguard

#define TG_MPI_CHECK(call) ::trainguard::CheckMpi((call), #call, __FILE__, __LINE__)
