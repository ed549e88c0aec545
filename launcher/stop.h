// How a rank ends: the exit code and metrics kind of an error, and the stop protocol every
// failing subcommand follows (tell the others, count and push the failure, wait for the others
// bounded by --fault-grace, abort the data plane, exit).
#pragma once

#include <exception>
#include <string>

#include "launcher/job.h"
#include "trainer/core/errors.h"

namespace trainguard {

// The kind of any error: Torch's distributed errors (NCCL, c10d stores) are communication
// failures; trainguard's own errors say their kind; anything else is internal.
ErrorKind KindOfAny(const std::exception& e);

// The exit code of an error (docs/exit-codes.md); a peer's failure gives that failure's code.
int ExitCodeOf(const std::exception& e);

// The failure kind of trainguard_failures_total: the cause's kind on the rank that failed,
// "peer" on the ranks that stop because of it.
std::string FailureKindOf(const std::exception& e);

// Counts `e` in the metrics and writes them out, once per rank: at detection (a step's own
// failure), or else in the stop protocol.
void CountFailure(const std::exception& e, Job& job);

// Ends this rank after `e` (see stop.cc); never returns.
[[noreturn]] void StopRank(const std::exception& e, Job& job, double grace_s);

}  // namespace trainguard
