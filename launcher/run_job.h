// RunJob: the frame every MPI subcommand (train, validate, predict) runs in.
#pragma once

#include <functional>

#include "launcher/cli.h"
#include "launcher/job.h"
#include "launcher/mpi_session.h"

namespace trainguard {

// Rank 0 prints the settings given and writes the whole configuration to --run-config; then the
// job is set up with a fault watch (every wait for other ranks gives up on a peer's fault
// notice or at --step-timeout), `configure(command, job)` runs when given (on every rank, agreed:
// it may complete `command` before the job is prepared, as predict takes its model settings from
// the checkpoint), the job is prepared collectively, and `body(job)` runs. Returns body's exit
// code; any error ends this rank through StopRank instead.
int RunJob(Command& command, MpiSession& mpi, const std::function<int(Job&)>& body,
           const std::function<void(Command&, Job&)>& configure = {});

}  // namespace trainguard
