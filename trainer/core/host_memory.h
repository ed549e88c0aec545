// This process's memory and the limit it runs under, for out-of-memory reports: an allocation
// fails at the smallest of the address-space limit (ulimit -v) and the cgroup's memory limit (a
// pod's, a Slurm task's), or at the host's memory.
#pragma once

#include <cstdint>
#include <string>

namespace trainguard {

struct HostMemory {
  int64_t resident_bytes = 0;  // this process's resident set
  int64_t limit_bytes = 0;     // the smallest limit found; 0: none found
  std::string limit_source;    // "address-space limit (ulimit -v)", "cgroup memory limit", "host memory"
};

HostMemory ReadHostMemory();

// "1.5 GiB", "300 MiB": bytes for people.
std::string Bytes(int64_t bytes);

}  // namespace trainguard
