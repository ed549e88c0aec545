// Who ends this process, and with which code. Three threads may each decide to end a rank: the
// training thread once a failure is found (its capture, diagnosis and stop protocol), the signal
// thread (a launcher's SIGTERM) and the watchdog (a step stuck in its computation). The first to
// claim the exit owns it: it alone counts the failure, writes the metrics and ends the process
// with its code. A later claimant neither counts nor exits: it logs why it stands aside and waits
// for the owner to end the process, so that a signal landing during the stop cannot replace the
// cause's code (8, say) with its own (6) or count a second failure.
#pragma once

#include <string>

namespace trainguard {

// Claims the exit for the calling thread. True when this thread owns it (now, or already: the
// claim is re-entrant, so a failure's capture can claim it and its stop protocol claim it again
// with the code). `code` >= 0 records the code the owner will end with.
bool ClaimExit(int code = -1);

// For a thread that lost the claim: logs `why` and the owner's code (when known), then blocks
// for good; the owner's exit ends the process, this thread included.
[[noreturn]] void StandAside(const std::string& why);

// A launcher is ending the job (its SIGTERM came during the stop): the owner keeps its code but
// cuts the stop short, ending the diagnosis and the waits for the other ranks at once, so that
// the rank is gone before the launcher's SIGKILL.
void HurryTheStop();
bool StopHurried();

}  // namespace trainguard
