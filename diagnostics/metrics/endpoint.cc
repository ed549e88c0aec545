// StartEndpoint: Exposer with civetweb's reason captured, then a self-probe (see endpoint.h).
#include "diagnostics/metrics/endpoint.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <thread>
#include <vector>

#include "diagnostics/metrics/http_get.h"

namespace trainguard {
namespace {

// civetweb logs start failures ("cannot bind to 127.0.0.1:9400: 98 (Address already in use)")
// synchronously on the thread that constructs the server; this collects them there.
thread_local std::vector<std::string>* civetweb_messages = nullptr;

int CaptureCivetwebMessage(const struct mg_connection*, const char* message) {
  if (civetweb_messages == nullptr || message == nullptr) return 0;  // 0: civetweb's default handling
  civetweb_messages->emplace_back(message);
  return 1;
}

// Opens and closes one connection to ipv4:port; errors do not matter.
void Knock(const std::string& ipv4, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, ipv4.c_str(), &addr.sin_addr) == 1) {
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  ::close(fd);
}

// How long a worker waits for a request (and to send its response) before dropping the
// connection. civetweb's default is 30 s, and each of the 2 workers holds one connection: two
// clients that connect and never finish a request (a port scanner's probe, a broken client) kept
// every scrape waiting for 30 s (tests/metrics/metrics_abuse_test.cc). A scrape request is one
// small packet, so 1 s is ample; it also bounds the stop (civetweb's workers see a stop only
// between polls, which last up to this long).
constexpr const char* kRequestTimeoutMs = "1000";

// The address a client on this host reaches `bind` by (0.0.0.0 serves every interface).
std::string LocalAddress(const std::string& bind) { return bind == "0.0.0.0" ? "127.0.0.1" : bind; }

std::string Join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

}  // namespace

Endpoint StartEndpoint(const std::string& bind, int port,
                       const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables,
                       double probe_timeout_s) {
  Endpoint endpoint;
  const std::string address = bind + ":" + std::to_string(port);
  CivetCallbacks callbacks{};
  callbacks.log_message = CaptureCivetwebMessage;
  std::vector<std::string> messages;
  civetweb_messages = &messages;
  try {
    endpoint.exposer =
        std::make_unique<prometheus::Exposer>(std::vector<std::string>{"listening_ports", address, "num_threads", "2",
                                                                       "request_timeout_ms", kRequestTimeoutMs},
                                              &callbacks);
  } catch (const std::exception& e) {
    civetweb_messages = nullptr;
    endpoint.error = "cannot serve metrics on " + address + ": " + (messages.empty() ? e.what() : Join(messages));
    return endpoint;
  }
  civetweb_messages = nullptr;
  for (const auto& collectable : collectables) endpoint.exposer->RegisterCollectable(collectable);
  const std::vector<int> ports = endpoint.exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    endpoint.exposer.reset();
    endpoint.error = "cannot serve metrics on " + address + ": civetweb reports no listening port";
    return endpoint;
  }
  const HttpResponse probe = HttpGet(LocalAddress(bind), ports.front(), "/metrics", probe_timeout_s);
  if (probe.status != 200) {
    endpoint.port = ports.front();
    StopEndpoint(endpoint, bind);
    endpoint.error = "metrics endpoint on " + bind + ":" + std::to_string(ports.front()) + " does not serve: " +
                     (probe.error.empty() ? "GET /metrics answered " + std::to_string(probe.status) : probe.error);
    return endpoint;
  }
  endpoint.port = ports.front();
  return endpoint;
}

void StopEndpoint(Endpoint& endpoint, const std::string& bind) {
  if (!endpoint.exposer) return;
  std::atomic<bool> stopped{false};
  std::thread waker;
  try {
    waker = std::thread([&stopped, address = LocalAddress(bind), port = endpoint.port] {
      while (!stopped) {
        Knock(address, port);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  } catch (const std::exception&) {
    // No thread: the stop takes civetweb's 2 s instead.
  }
  endpoint.exposer.reset();
  stopped = true;
  if (waker.joinable()) waker.join();
  endpoint.port = 0;
}

}  // namespace trainguard
