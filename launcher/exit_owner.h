// Who ends this process, and with which code. Three threads may each decide to end a rank: the
// main thread's stop protocol (StopRank), the signal thread (a launcher's SIGTERM) and the
// watchdog (a step stuck in its computation). The first to claim the exit owns it: it alone
// counts the failure, writes the metrics and calls _Exit with its code. A later claimant neither
// counts nor exits: it logs why it stands aside and waits for the owner to end the process, so a
// signal that lands during the stop protocol cannot replace the cause's code (9, say) with its
// own (6) or count a second failure.
#pragma once

#include <string>

namespace trainguard {

// Claims the exit for `code`. True: the caller owns it and must end the process. False: another
// thread owns it already (ClaimedExitCode() says with which code).
bool ClaimExit(int code);

// The code the owner ends the process with; -1 while nobody has claimed the exit.
int ClaimedExitCode();

// For a thread that lost the claim: logs `why` with the owner's code, then blocks for good (the
// owner's _Exit ends the process, this thread included).
[[noreturn]] void StandAside(const std::string& why);

}  // namespace trainguard
