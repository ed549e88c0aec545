// Plain log lines on stderr, and optionally a file, prefixed with time and rank:
// "[12:00:01 rank 1] message".
// Thread-safe; each call writes one whole line.
#pragma once

#include <string>

namespace trainguard {

// Sets the rank shown in every later line (default: no rank).
void SetLogRank(int rank);

// From now on every line also goes to `path` (appended, the folder made if missing). Returns ""
// or why the file cannot be opened (the lines then go to stderr only).
std::string SetLogFile(const std::string& path);

// Writes one line to stderr (and to the log file, if set).
void LogLine(const std::string& message);

// The text up to its first newline (Torch's messages carry a backtrace after it).
std::string FirstLine(const std::string& text);

}  // namespace trainguard
