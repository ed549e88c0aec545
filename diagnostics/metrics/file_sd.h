// Prometheus file-based service discovery (file_sd): the JSON that lists every rank's metrics
// endpoint, so that Prometheus finds the ranks of a job without a per-job scrape config. Rank 0
// gathers every rank's Target elsewhere and writes the file.
#pragma once

#include <string>
#include <vector>

namespace trainguard {

// One rank's metrics endpoint.
struct Target {
  std::string host;  // a name or address Prometheus can reach
  int port = 0;      // the bound port (Metrics::port())
  int rank = 0;
};

// The file_sd JSON: one entry per target, in the order given, each
// {"labels": {"host": H, "job": job, "rank": "R"}, "targets": ["H:P"]} ("[H]:P" when H holds a
// ':'), indented by 2, ending in a newline.
std::string FileSdJson(const std::string& job, const std::vector<Target>& targets);

// Writes FileSdJson(job, targets) to `path` atomically (temporary file in the same folder,
// fsync, rename): Prometheus, which rereads the file when it changes, never sees half of it.
// Returns "" on success, else a warning naming the path and the OS reason. Never throws.
std::string WriteFileSd(const std::string& path, const std::string& job, const std::vector<Target>& targets);

}  // namespace trainguard
