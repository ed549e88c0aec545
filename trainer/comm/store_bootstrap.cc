// The TCPStore bootstrap across hosts (see store_bootstrap.h).
#include "trainer/comm/store_bootstrap.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"

namespace trainguard {
namespace {

// A non-blocking connect, bounded by `timeout_s`: a cut network drops the SYN and would
// otherwise hold the rank for the kernel's retry schedule (minutes).
// `address` is numeric IPv4 or IPv6 (HostAddresses, --store-addr).
bool Accepts(const std::string& address, int port, double timeout_s) {
  sockaddr_storage to{};
  socklen_t length = 0;
  auto& v4 = reinterpret_cast<sockaddr_in&>(to);
  auto& v6 = reinterpret_cast<sockaddr_in6&>(to);
  if (inet_pton(AF_INET, address.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof v4;
  } else if (inet_pton(AF_INET6, address.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof v6;
  } else {
    return false;
  }
  const int fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&to), length) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    int error = 0;
    socklen_t size = sizeof error;
    ok = poll(&p, 1, static_cast<int>(timeout_s * 1000)) == 1 &&
         getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0 && error == 0;
  }
  close(fd);
  return ok;
}

// Whether a TCP socket can bind `port` on every interface now (SO_REUSEADDR, as the store's own
// listening socket): c10d's error for a port in use names neither the port nor a remedy.
bool PortFree(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // the store's own attempt will say what is wrong
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in any{};
  any.sin_family = AF_INET;
  any.sin_addr.s_addr = htonl(INADDR_ANY);
  any.sin_port = htons(port);
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&any), sizeof any) == 0;
  close(fd);
  return free;
}

}  // namespace

std::string FirstReachable(const std::vector<std::string>& addresses, int port, double timeout_s) {
  for (const auto& a : addresses) {
    if (Accepts(a, port, timeout_s)) return a;
  }
  return "";
}

c10::intrusive_ptr<c10d::Store> ConnectStore(ControlPlane& control, const std::string& store_addr, uint16_t store_port,
                                             double timeout_s) {
  const int rank = control.rank();
  c10d::TCPStoreOptions opts;
  opts.isServer = rank == 0;
  opts.port = store_port;  // rank 0 binds it (0: a free one) on every interface; the others learn it below
  opts.numWorkers = control.world();
  opts.waitWorkers = false;
  opts.timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  c10::intrusive_ptr<c10d::TCPStore> store;
  std::string offer;        // "<port> <address>..."
  RunAgreed(control, [&] {  // a rank 0 without its store stops every rank
    if (rank != 0) return;
    const std::vector<std::string> addresses =
        store_addr.empty() ? HostAddresses() : std::vector<std::string>{store_addr};
    if (store_port != 0 && !PortFree(store_port)) {
      throw ConfigError("--store-port " + std::to_string(store_port) +
                        ": rank 0 cannot open its TCPStore on TCP port " + std::to_string(store_port) +
                        " (in use, or privileged): pick a free port (and allow it between the nodes), or 0 for any "
                        "free port");
    }
    store = c10::make_intrusive<c10d::TCPStore>(addresses.front(), opts);
    offer = std::to_string(store->getPort());
    for (const auto& a : addresses) offer += " " + a;
  });
  control.Broadcast(offer, 0);  // guarded like every control-plane wait
  if (rank == 0) return store;

  std::istringstream in(offer);
  int port = 0;
  in >> port;
  std::vector<std::string> addresses;
  for (std::string a; in >> a;) addresses.push_back(a);
  const std::string host = FirstReachable(addresses, port, 3.0);
  std::string tried;
  for (const auto& a : addresses) tried += (tried.empty() ? "" : ", ") + a;
  if (host.empty()) {
    throw CommError("rank " + std::to_string(rank) + " reaches none of the addresses rank 0 offers for its TCPStore (" +
                    tried + ", port " + std::to_string(port) +
                    "); pass --store-addr with an address of rank 0's host that every host can reach");
  }
  opts.isServer = false;
  opts.port = static_cast<uint16_t>(port);
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, opts);
  } catch (const std::exception& e) {
    throw CommError("rank " + std::to_string(rank) + " cannot reach rank 0's TCPStore at " + host + ":" +
                    std::to_string(port) + " (" + e.what() +
                    "); pass --store-addr with an address of rank 0's host that this host can reach");
  }
}

}  // namespace trainguard
