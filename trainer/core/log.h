// Plain log lines on stderr, prefixed with time and rank: "[12:00:01 rank 1] message".
// Thread-safe; each call writes one whole line.
#pragma once

#include <string>

namespace trainguard {

// Sets the rank shown in every later line (default: no rank).
void SetLogRank(int rank);

// Writes one line to stderr.
void LogLine(const std::string& message);

// The text up to its first newline (Torch's messages carry a backtrace after it).
std::string FirstLine(const std::string& text);

}  // namespace trainguard
