// The liveness side channel over UDP (see liveness.h).
#include "diagnostics/faults/liveness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <random>
#include <sstream>

#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

socklen_t LengthOf(const sockaddr_storage& a) {
  return a.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

uint16_t PortOf(const sockaddr_storage& a) {
  return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                                       : reinterpret_cast<const sockaddr_in&>(a).sin_port);
}

// Binds a new UDP socket of `family` to `port` on every interface; -1 with errno set on failure.
int BoundSocket(int family, uint16_t port) {
  const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_storage any{};
  if (family == AF_INET6) {
    const int off = 0;  // dual-stack: IPv4 peers too, whatever net.ipv6.bindv6only says
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    auto& a = reinterpret_cast<sockaddr_in6&>(any);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_any;
    a.sin6_port = htons(port);
  } else {
    auto& a = reinterpret_cast<sockaddr_in&>(any);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = htons(port);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&any), LengthOf(any)) != 0) {
    const int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

int OpenLivenessSocket(uint16_t port) {
  int fd = BoundSocket(AF_INET6, port);
  if (fd < 0 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) fd = BoundSocket(AF_INET, port);  // no IPv6 here
  if (fd >= 0) return fd;
  const int e = errno;
  if (port != 0 && (e == EADDRINUSE || e == EACCES)) {
    throw ConfigError("--liveness-port " + std::to_string(port) + ": rank 0 cannot bind UDP port " +
                      std::to_string(port) + " (" + std::strerror(e) +
                      "): another process holds it, or it is privileged; pick a free port (and allow it "
                      "between the nodes), or 0 for any free port");
  }
  throw CommError(std::string("liveness: cannot bind a UDP socket: ") + std::strerror(e));
}

uint16_t BoundPort(int fd) {
  sockaddr_storage bound{};
  socklen_t size = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &size);
  return PortOf(bound);
}

std::optional<sockaddr_storage> LivenessAddress(int fd, const std::string& address, uint16_t port) {
  sockaddr_storage own{};
  socklen_t size = sizeof own;
  getsockname(fd, reinterpret_cast<sockaddr*>(&own), &size);
  sockaddr_storage out{};
  in_addr v4{};
  const bool is_v4 = inet_pton(AF_INET, address.c_str(), &v4) == 1;
  if (own.ss_family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(out);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    if (is_v4) {  // ::ffff:a.b.c.d
      a.sin6_addr.s6_addr[10] = 0xff;
      a.sin6_addr.s6_addr[11] = 0xff;
      std::memcpy(&a.sin6_addr.s6_addr[12], &v4, 4);
      return out;
    }
    if (inet_pton(AF_INET6, address.c_str(), &a.sin6_addr) == 1) return out;
    return std::nullopt;
  }
  if (!is_v4) return std::nullopt;
  auto& a = reinterpret_cast<sockaddr_in&>(out);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr = v4;
  return out;
}

Liveness::Liveness(ControlPlane& control, LivenessOptions options, const std::string& hub_addr, uint16_t hub_port)
    : options_(options) {
  const bool hub = control.rank() == LivenessBoard::kHub;
  int fd = -1;
  RunAgreed(control, [&] { fd = OpenLivenessSocket(hub ? hub_port : 0); });  // one rank without a socket stops all
  // Rank 0 offers "<nonce> <port> <address>..."; the nonce keeps another job's datagrams out.
  std::string offer;
  if (hub) {
    std::ostringstream out;
    std::random_device random;
    const uint64_t nonce = (uint64_t{random()} << 32) | random();
    out << nonce << ' ' << BoundPort(fd);
    const std::vector<std::string> addresses = hub_addr.empty() ? HostAddresses() : std::vector<std::string>{hub_addr};
    for (const auto& a : addresses) out << ' ' << a;
    offer = out.str();
  }
  control.Broadcast(offer, LivenessBoard::kHub);
  LivenessEndpoint endpoint;
  endpoint.rank = control.rank();
  endpoint.fd = fd;
  endpoint.hosts = control.AllGather(HostName());
  std::istringstream in(offer);
  uint16_t port = 0;
  if (!(in >> endpoint.nonce >> port) || port == 0) {
    close(fd);
    throw CommError("liveness: rank 0's offer is malformed: '" + offer + "'");
  }
  for (std::string a; in >> a;) {
    if (auto address = LivenessAddress(fd, a, port)) endpoint.hub_addresses.push_back(*address);
  }
  Start(std::move(endpoint));
}

Liveness::Liveness(LivenessEndpoint endpoint, LivenessOptions options) : options_(options) {
  Start(std::move(endpoint));
}

void Liveness::Start(LivenessEndpoint endpoint) {
  fd_ = endpoint.fd;
  hub_port_ = endpoint.rank == LivenessBoard::kHub ? BoundPort(fd_)
              : endpoint.hub_addresses.empty()     ? 0
                                                   : PortOf(endpoint.hub_addresses.front());
  hub_candidates_ = std::move(endpoint.hub_addresses);
  board_ = std::make_unique<LivenessBoard>(endpoint.rank, std::move(endpoint.hosts), endpoint.nonce, options_,
                                           LivenessClock::now());
  thread_ = std::thread([this] { Run(); });
}

Liveness::~Liveness() {
  Leave();
  if (fd_ >= 0) close(fd_);
}

void Liveness::Report(const Progress& progress) {
  std::lock_guard<std::mutex> lock(mutex_);
  const Progress& old = board_->own();
  Progress p = progress;
  const bool same =
      p.state == old.state && p.step == old.step && p.collective == old.collective && p.waiting == old.waiting;
  p.since = same ? old.since : LivenessClock::now();
  board_->SetOwn(p);
}

std::set<int> Liveness::Silent() {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->Silent(LivenessClock::now());
}

double Liveness::LongestSilence() {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->LongestSilence(LivenessClock::now());
}

bool Liveness::HubLost() {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->HubLost(LivenessClock::now());
}

bool Liveness::NoOneToWaitFor() {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->NoOneToWaitFor(LivenessClock::now());
}

bool Liveness::AnyStopping() {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->AnyStopping(LivenessClock::now());
}

std::string Liveness::Describe(int rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->Describe(rank, LivenessClock::now());
}

std::string Liveness::Name(int rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->Name(rank);
}

std::string Liveness::Host(int rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  return board_->host(rank);
}

void Liveness::Leave() {
  if (stop_.exchange(true) || !thread_.joinable()) return;
  thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  Progress p = board_->own();
  p.state = 'L';
  board_->SetOwn(p);
  const auto now = LivenessClock::now();
  if (board_->rank() == LivenessBoard::kHub) {
    const std::vector<std::string> digest = board_->Digest(now);
    for (const auto& [rank, address] : senders_) {
      for (const std::string& part : digest) SendTo(address, part);
    }
  } else {
    const std::string beacon = board_->Beacon(now);
    if (hub_) {
      SendTo(*hub_, beacon);
    } else {
      for (const auto& c : hub_candidates_) SendTo(c, beacon);
    }
  }
}

void Liveness::SendTo(const sockaddr_storage& to, const std::string& bytes) {
  // Best effort: a full buffer or an unreachable network is what silence is made of.
  sendto(fd_, bytes.data(), bytes.size(), MSG_DONTWAIT, reinterpret_cast<const sockaddr*>(&to), LengthOf(to));
}

void Liveness::SendBeacon(LivenessClock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (hub_ && board_->HubLost(now)) hub_.reset();  // rank 0 may answer on another address now
  const std::string beacon = board_->Beacon(now);
  if (hub_) {
    SendTo(*hub_, beacon);
  } else {
    for (const auto& c : hub_candidates_) SendTo(c, beacon);
  }
}

void Liveness::Receive(LivenessClock::time_point now) {
  char buffer[65536];
  for (;;) {
    sockaddr_storage from{};
    socklen_t size = sizeof from;
    const ssize_t n = recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &size);
    if (n <= 0) return;
    const std::string datagram(buffer, static_cast<size_t>(n));
    std::lock_guard<std::mutex> lock(mutex_);
    const int sender = board_->Take(datagram, now);
    if (sender < 0) continue;
    if (board_->rank() == LivenessBoard::kHub) {
      senders_[sender] = from;
      if (digest_.empty() || std::chrono::duration<double>(now - digest_built_).count() >= options_.digest_reuse_s) {
        digest_ = board_->Digest(now);
        digest_built_ = now;
      }
      for (const std::string& part : digest_) SendTo(from, part);
    } else {
      hub_ = from;  // the address of rank 0 that answers
    }
  }
}

void Liveness::Run() {
  using namespace std::chrono;
  const bool hub = board_->rank() == LivenessBoard::kHub;
  const auto interval = duration_cast<LivenessClock::duration>(duration<double>(options_.beacon_interval_s));
  auto next_beacon = LivenessClock::now();
  const auto warn_at = next_beacon + seconds(kConnectWithinS);
  bool warned = false;
  while (!stop_) {
    if (!warned && LivenessClock::now() > warn_at) {
      warned = true;
      std::lock_guard<std::mutex> lock(mutex_);
      if (!board_->Connected()) {
        LogLine(std::string("warning: the liveness channel does not work: ") +
                (hub ? "no beacon from any rank reached rank 0" : "no answer from rank 0") + " on UDP port " +
                std::to_string(hub_port_) + " within " + std::to_string(kConnectWithinS) +
                " s; a silent rank (a lost node, a cut link) will be found only at --step-timeout. Let UDP through "
                "between the nodes");
      }
    }
    auto now = LivenessClock::now();
    if (!hub && now >= next_beacon) {
      SendBeacon(now);
      next_beacon = now + interval;
    }
    const auto wait_ms = hub ? 100 : std::max<int64_t>(1, duration_cast<milliseconds>(next_beacon - now).count());
    pollfd p{fd_, POLLIN, 0};
    poll(&p, 1, static_cast<int>(std::min<int64_t>(wait_ms, 100)));  // 100 ms: stop_ is seen quickly
    Receive(LivenessClock::now());
  }
}

}  // namespace trainguard
