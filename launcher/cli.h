// Command-line parsing: the only place that reads argv and TRAINGUARD_* variables. Precedence:
// a flag on the command line, then the --config file, then the environment, then the default.
#pragma once

#include <string>

#include "trainer/core/config.h"

namespace trainguard {

struct Command {
  enum class Kind { kExit, kTrain };
  Kind kind = Kind::kExit;
  int exit_code = 0;         // for kExit: help printed (0) or usage error (2)
  TrainConfig train;
  std::string resolved;      // the resolved configuration, in config-file syntax
};

// Parses argv and the TRAINGUARD_* environment. Prints help and usage errors itself (on rank 0
// only when `quiet` is false). A bad value yields kExit(2) with a message naming the flag, and
// an unknown TRAINGUARD_* variable is an error too (a typo must not be silently ignored).
Command ParseCommandLine(int argc, char** argv, bool quiet);

}  // namespace trainguard
