// A minimal HTTP/1.0 GET over IPv4 with one overall deadline (plain POSIX sockets). The metrics
// endpoint probes itself with it after starting (civetweb can report a port and still not
// serve), and the metrics tests read Prometheus and the Pushgateway with it.
#pragma once

#include <string>

namespace trainguard {

struct HttpResponse {
  int status = 0;     // the HTTP status code; 0 when no response came
  std::string body;   // the bytes after the header
  std::string error;  // why no response came (connect, send, read, deadline); empty when one came
};

// Sends "GET path HTTP/1.0" to ipv4:port (numeric address) and reads the response until the
// server closes the connection. Never blocks longer than timeout_s in total: connect, send and
// read share one deadline. A server that accepts and never answers gives status 0 and an error.
HttpResponse HttpGet(const std::string& ipv4, int port, const std::string& path, double timeout_s);

}  // namespace trainguard
