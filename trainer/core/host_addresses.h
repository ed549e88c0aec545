// The IPv4 addresses this host offers to other hosts (rank 0's TCPStore, the liveness hub).
#pragma once

#include <string>
#include <vector>

namespace trainguard {

// What the host name resolves to (unless a loopback address), then every other non-loopback
// interface address in the system's order, then 127.0.0.1 (a single node). Never empty.
std::vector<std::string> HostAddresses();

}  // namespace trainguard
