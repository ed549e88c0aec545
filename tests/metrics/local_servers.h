// Real Prometheus, Pushgateway and promtool for the metrics tests, on loopback only: each
// server is a child process in a test's temporary folder, stopped when the object goes out of
// scope (a failed assertion included) and killed if the test process dies (PR_SET_PDEATHSIG).
// The Debian packages prometheus and prometheus-pushgateway provide them (scripts/setup.sh).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/metrics/http_get.h"

namespace trainguard::testing {

// A port nobody listens on now (bound to 127.0.0.1:0, then released).
inline int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("FreePort: cannot bind 127.0.0.1:0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A socket listening on 127.0.0.1 that never accepts: the kernel completes connections into
// its backlog, so a client connects and then waits for an answer that never comes.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("SilentServer: cannot listen on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Runs `command` through the shell; returns its exit status and its output (stdout and stderr).
inline std::pair<int, std::string> RunCommand(const std::string& command) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// `promtool check metrics < path`: exit status 0 and no output when the exposition is clean.
inline std::pair<int, std::string> PromtoolCheckMetrics(const std::string& path) {
  return RunCommand(std::string(TG_PROMTOOL_BIN) + " check metrics < '" + path + "'");
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// One server process on 127.0.0.1:port(), ready (GET /-/ready is 200) when the constructor
// returns; its output goes to `log` and is shown when it does not become ready.
class ServerProcess {
 public:
  ServerProcess(std::vector<std::string> argv, int port, const std::string& log) : port_(port), log_(log) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (HttpGet("127.0.0.1", port_, "/-/ready", 1).status != 200) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(argv[0] + " exited at start (is it installed? scripts/setup.sh): " + ReadFile(log_));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        Stop();
        throw std::runtime_error(argv[0] + " not ready within 15 s: " + ReadFile(log_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~ServerProcess() { Stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  std::string Log() const { return ReadFile(log_); }

  // SIGTERM, up to 3 s to exit, then SIGKILL.
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int port_;
  std::string log_;
};

// Percent-encodes a PromQL expression for a query string.
inline std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// Prometheus scraping, every second, the targets of one file_sd file (honor_labels: the
// targets' own job and rank labels win), with its storage in `dir`.
class LocalPrometheus {
 public:
  LocalPrometheus(const std::string& dir, const std::string& targets_file)
      : port_(FreePort()), server_(Argv(dir, targets_file, port_), port_, dir + "/prometheus.log") {}

  // The result vector of an instant query (an array of {"metric": labels, "value": [t, "v"]}).
  nlohmann::json Query(const std::string& expr) const {
    const HttpResponse r = HttpGet("127.0.0.1", port_, "/api/v1/query?query=" + UrlEncode(expr), 5);
    if (r.status != 200) throw std::runtime_error("query " + expr + ": " + std::to_string(r.status) + " " + r.error);
    return nlohmann::json::parse(r.body).at("data").at("result");
  }
  // Polls `expr` until it has a result (Prometheus scrapes file_sd targets 5-6 s after start).
  nlohmann::json QueryUntilPresent(const std::string& expr, double timeout_s) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    for (;;) {
      nlohmann::json result = Query(expr);
      if (!result.empty() || std::chrono::steady_clock::now() > deadline) return result;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  std::string Log() const { return server_.Log(); }

 private:
  static std::vector<std::string> Argv(const std::string& dir, const std::string& targets_file, int port) {
    const std::string config = dir + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: trainguard\n"
                             "    honor_labels: true\n"
                             "    file_sd_configs:\n"
                             "      - files: ['"
                          << targets_file
                          << "']\n"
                             "        refresh_interval: 1s\n";
    return {TG_PROMETHEUS_BIN, "--config.file=" + config, "--storage.tsdb.path=" + dir + "/tsdb",
            "--web.listen-address=127.0.0.1:" + std::to_string(port), "--log.level=warn"};
  }

  int port_;
  ServerProcess server_;
};

// A Pushgateway on loopback (no persistence).
class LocalPushgateway {
 public:
  explicit LocalPushgateway(const std::string& dir)
      : port_(FreePort()),
        // Debian's build persists pushes to /var/lib/prometheus/pushgateway.data by default:
        // each gateway here keeps them in its own folder, so runs never see each other's.
        server_({TG_PUSHGATEWAY_BIN, "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                 "--persistence.file=" + dir + "/pushgateway.data", "--log.level=warn"},
                port_, dir + "/pushgateway.log") {}

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The Pushgateway's own /metrics: every pushed group's series.
  std::string Metrics() const {
    const HttpResponse r = HttpGet("127.0.0.1", port_, "/metrics", 5);
    if (r.status != 200) throw std::runtime_error("pushgateway /metrics: " + r.error);
    return r.body;
  }

 private:
  int port_;
  ServerProcess server_;
};

}  // namespace trainguard::testing
