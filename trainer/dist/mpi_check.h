// TG_MPI_CHECK: every MPI call goes through it. On failure it throws CommError carrying the
// host, pid, rank, file:line, the call and MPI's own error string.
#pragma once

#include <mpi.h>

#include <string>

namespace trainguard {

// Throws CommError when rc != MPI_SUCCESS.
void CheckMpi(int rc, const char* call, const char* file, int line);

}  // namespace trainguard

#define TG_MPI_CHECK(call) ::trainguard::CheckMpi((call), #call, __FILE__, __LINE__)
