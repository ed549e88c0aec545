// The per-rank /metrics endpoint: a prometheus::Exposer (civetweb) on "BIND:PORT", started so
// that a failure says why. Every Exposer start failure throws the same "null context when
// constructing CivetServer" text, so civetweb's own log messages are captured while it starts.
// After starting, the endpoint GETs its own /metrics (civetweb can return a port and still not
// serve) and expects 200. Internal to tg_metrics.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>

#include <memory>
#include <string>
#include <vector>

namespace trainguard {

struct Endpoint {
  std::unique_ptr<prometheus::Exposer> exposer;  // null when the start failed
  int port = 0;                                  // the bound port; 0 when the start failed
  std::string error;  // why the start failed (address and civetweb's reason); empty on success
};

// Serves `collectables`, collected in this order for each request, at http://bind:port/metrics
// with 2 server threads. A connection that does not deliver its request within 1 s is dropped, so
// clients that never finish a request delay scrapes by about a second, not civetweb's default
// 30 s. `bind` is a numeric IPv4 address; port 0 asks for a free port. Never throws: a failure is
// reported in Endpoint::error. Blocks at most about probe_timeout_s (the self-probe).
Endpoint StartEndpoint(const std::string& bind, int port,
                       const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables,
                       double probe_timeout_s = 2);

// Stops the endpoint (if any) in well under a second: civetweb's listener polls in 2 s quanta
// and checks for a stop between polls, so while the Exposer is being destroyed this connects to
// the port every 20 ms to wake it. Blocks until civetweb's threads have ended; a worker waiting
// on a client's unfinished request sees the stop when its 1 s request timeout ends the wait, so
// with such a client connected the stop takes up to about a second.
void StopEndpoint(Endpoint& endpoint, const std::string& bind);

}  // namespace trainguard
