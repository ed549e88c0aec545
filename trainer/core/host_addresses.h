// This host's name, and the IPv4 addresses it offers to other hosts (rank 0's TCPStore, the
// liveness hub).
#pragma once

#include <string>
#include <vector>

namespace trainguard {

// gethostname(), or "?" when it fails.
std::string HostName();

// What the host name resolves to (unless a loopback address), then every other non-loopback
// interface address in the system's order, then 127.0.0.1 (a single node). Never empty.
std::vector<std::string> HostAddresses();

}  // namespace trainguard
