// RunJob: the frame every MPI subcommand (train, validate, predict) runs in.
#pragma once

#include <functional>

#include "launcher/cli.h"
#include "launcher/job.h"
#include "launcher/mpi_session.h"

namespace trainguard {

// Rank 0 prints the settings given and writes the whole configuration to --run-config; then the
// job is set up with a fault watch (every wait for other ranks gives up on a peer's fault
// notice or at --step-timeout), prepared collectively, and `body(job)` runs. Returns body's
// exit code; any error ends this rank through StopRank instead.
int RunJob(const Command& command, MpiSession& mpi, const std::function<int(Job&)>& body);

}  // namespace trainguard
