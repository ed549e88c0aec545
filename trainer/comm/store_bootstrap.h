// The c10d TCPStore that NCCL bootstraps through, reached across hosts: rank 0 opens the store on
// `store_port` (0: a free port) and offers every address of its host (or --store-addr alone); each other rank
// connects to the first of them it can reach. Runs on the CPU: tested across simulated hosts.
#pragma once

#include <c10/util/intrusive_ptr.h>

#include <string>
#include <vector>

#include "trainer/core/control_plane.h"

namespace c10d {
class Store;
}  // namespace c10d

namespace trainguard {

// Collective over `control` (which carries the offer). `store_addr`: the only address offered
// when not empty. `store_port`: the store's port (0: any free port). `timeout_s`: the store's
// own timeout. Throws on every rank when rank 0 cannot open the store (there ConfigError naming
// --store-port when that port is taken, else CommError; PeerError elsewhere), and CommError
// naming every address tried when a rank reaches none of them.
c10::intrusive_ptr<c10d::Store> ConnectStore(ControlPlane& control, const std::string& store_addr, uint16_t store_port,
                                             double timeout_s);

// The first of `addresses` that accepts a TCP connection on `port` within `timeout_s` each; ""
// when none does.
std::string FirstReachable(const std::vector<std::string>& addresses, int port, double timeout_s);

}  // namespace trainguard
