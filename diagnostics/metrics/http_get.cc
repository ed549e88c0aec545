// HttpGet: non-blocking socket, poll() against one deadline (see http_get.h).
#include "diagnostics/metrics/http_get.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

namespace trainguard {
namespace {

using Clock = std::chrono::steady_clock;

std::string Errno(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// Waits until fd is ready for `events` or the deadline passes; returns "" or the reason.
std::string WaitFor(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return "no answer before the deadline";
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return "";
    if (n < 0 && errno != EINTR) return Errno("poll", errno);
  }
}

// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

HttpResponse HttpGet(const std::string& ipv4, int port, const std::string& path, double timeout_s) {
  HttpResponse response;
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  const std::string where = "http://" + ipv4 + ":" + std::to_string(port) + path;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (port <= 0 || port > 65535 || ::inet_pton(AF_INET, ipv4.c_str(), &addr.sin_addr) != 1) {
    response.error = "GET " + where + ": not a numeric IPv4 address and port";
    return response;
  }
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    response.error = Errno("GET " + where + ": socket", errno);
    return response;
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      response.error = Errno("GET " + where + ": connect", errno);
      return response;
    }
    std::string waited = WaitFor(fd.get(), POLLOUT, deadline);
    int err = 0;
    socklen_t len = sizeof err;
    if (waited.empty() && ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
      waited = Errno("connect", err);
    }
    if (!waited.empty()) {
      response.error = "GET " + where + ": " + waited;
      return response;
    }
  }
  const std::string request =
      "GET " + path + " HTTP/1.0\r\nHost: " + ipv4 + ":" + std::to_string(port) + "\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n >= 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    std::string waited =
        (errno == EAGAIN || errno == EINTR) ? WaitFor(fd.get(), POLLOUT, deadline) : Errno("send", errno);
    if (!waited.empty()) {
      response.error = "GET " + where + ": " + waited;
      return response;
    }
  }
  std::string raw;
  char buffer[16384];
  for (;;) {
    const ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n > 0) {
      raw.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    std::string waited =
        (errno == EAGAIN || errno == EINTR) ? WaitFor(fd.get(), POLLIN, deadline) : Errno("recv", errno);
    if (!waited.empty()) {
      response.error = "GET " + where + ": " + waited;
      return response;
    }
  }
  // "HTTP/1.1 200 OK\r\n..." then a blank line, then the body.
  if (raw.compare(0, 5, "HTTP/") != 0 || raw.find(' ') == std::string::npos) {
    response.error = "GET " + where + ": not an HTTP response";
    return response;
  }
  response.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end != std::string::npos) response.body = raw.substr(header_end + 4);
  return response;
}

}  // namespace trainguard
