// The call stack of the training thread, read from another thread: what a rank that is stuck in
// its computation logs before it exits, so that "where is it stuck" needs no debugger. The
// training thread is interrupted by SIGURG (ignored by default, used by nothing else here), its
// handler records the return addresses with backtrace(), and the asking thread symbolizes them.
#pragma once

#include <string>

namespace trainguard {

// Call on the training thread, once, before it may get stuck: installs the handler.
void RememberTrainingThread();

// The training thread's call stack, one frame a line ("  #3 trainguard::Trainer::Run() +0x1f in
// trainguard"), or why it could not be read (not remembered, no answer within `timeout_s`).
std::string TrainingThreadStack(double timeout_s);

}  // namespace trainguard
