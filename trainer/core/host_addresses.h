// This host's name, and the addresses it offers to other hosts (rank 0's TCPStore, the liveness
// hub): IPv4, or IPv6 on a host that has no IPv4 address but loopback.
#pragma once

#include <string>
#include <vector>

namespace trainguard {

// gethostname(), or "?" when it fails.
std::string HostName();

// What the host name resolves to (unless a loopback address), then every other non-loopback
// interface address in the system's order, then 127.0.0.1 (a single node). IPv4 addresses only,
// unless the host has none but loopback: then its IPv6 ones (not link-local), and ::1 after
// 127.0.0.1. Numeric text, IPv6 without brackets. Never empty.
std::vector<std::string> HostAddresses();

}  // namespace trainguard
