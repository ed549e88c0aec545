// TG_MPI_CHECK: every MPI call goes through it. On failure it throws CommError carrying the
// host, pid, rank, file:line, the call and MPI's own error string.
#pragma once

#include <mpi.h>

#include <string>

#include "trainer/core/wait_guard.h"

namespace trainguard {

// Throws CommError when rc != MPI_SUCCESS.
void CheckMpi(int rc, const char* call, const char* file, int line);

// Completes `request`. Without a guard it blocks in MPI_Wait; with one it polls MPI_Test and
// calls guard->Check() between polls, so that a fault notice or a deadline ends the wait (the
// exception leaves the request pending: the process is then expected to exit).
void WaitFor(MPI_Request& request, WaitGuard* guard);

}  // namespace trainguard

#define TG_MPI_CHECK(call) ::trainguard::CheckMpi((call), #call, __FILE__, __LINE__)
