// The Pushgateway push of one rank's metrics, bounded in time. prometheus-cpp 1.0.1's Gateway
// has no request timeout, so the push runs on a detached thread and the caller waits at most
// timeout_s; a push that overruns finishes (or hangs) on its own and owns what it uses.
#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
}

namespace trainguard {

// Where the Pushgateway is, in the pieces prometheus::Gateway takes.
struct GatewayAddress {
  std::string host;  // with the scheme, as Gateway needs it: "http://127.0.0.1"
  std::string port;  // "9091"
};

// Parses "http://HOST[:PORT][/]" or "https://..." (HOST a name, an IPv4 address or "[IPv6]");
// without a port, 80 or 443 by the scheme. Returns "" and fills *address, or the reason the URL
// is not usable (no scheme, a path, a bad port).
std::string ParsePushgatewayUrl(const std::string& url, GatewayAddress* address);

// Pushes the metrics of `registry` to the group job=`job`, rank=`rank` of the Pushgateway at
// `url`, replacing the whole group (what the group held before and does not hold now is gone).
// Returns "" on success, else a warning naming the URL and the reason (no connection, an HTTP
// status, no answer within timeout_s). Never throws; returns within about timeout_s. `job` goes
// unencoded into the URL path (prometheus-cpp 1.0.1 does not encode): keep it URL-safe.
std::string PushToGateway(const std::shared_ptr<prometheus::Registry>& registry, const std::string& url,
                          const std::string& job, int rank, double timeout_s);

}  // namespace trainguard
