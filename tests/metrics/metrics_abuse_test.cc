// The /metrics endpoint under bad HTTP, against a real endpoint on 127.0.0.1: garbage bytes, a
// 1 MB header, requests that never finish, and 64 clients at once. While and after each abuse a
// normal GET /metrics answers 200 within kScrapeBound_s, the endpoint stops within about a
// second, and a training-like thread calling Metrics::OnStep is never held up by the server.
// Every client is bounded in count and in time, and talks to loopback only.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/metrics/http_get.h"
#include "diagnostics/metrics/metrics.h"

namespace trainguard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kScrapeBound_s = 2.0;        // a normal GET /metrics answers within this, abuse or not
constexpr double kStopBound_s = 1.0;          // the endpoint stops within this (plus slack on a loaded machine)
constexpr double kStepLatencyBound_s = 0.25;  // no OnStep call takes longer; a block on the server takes seconds
constexpr double kStepPeriod_s = 0.002;       // the training-like thread's step period
constexpr double kMinStepRateRatio = 0.25;    // its step rate during an abuse vs. the baseline (CPU is shared)
constexpr double kAbuse_s = 1.0;              // each abuse is repeated for this long (bounded in count too)
constexpr int kClients = 64;                  // concurrent clients of the storm
constexpr double kClientBound_s = 10;         // the longest any client socket call may block

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One TCP connection to 127.0.0.1:port. Every call returns by its deadline: the socket is
// non-blocking and each wait is a poll() bounded by what is left.
class Client {
 public:
  Client(int port, double timeout_s)
      : deadline_(Clock::now() +
                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s))) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      connected_ = true;
    } else if (errno == EINPROGRESS && Wait(POLLOUT)) {
      int error = 0;
      socklen_t len = sizeof error;
      connected_ = ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0;
    }
  }
  ~Client() {
    if (fd_ >= 0) ::close(fd_);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // Sends as much of `data` as the server takes before the deadline or an error (a server that
  // refuses a request may close the connection while it is being sent); returns the bytes sent.
  size_t Send(const std::string& data) {
    size_t sent = 0;
    while (connected_ && sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!Wait(POLLOUT)) break;
      } else {
        break;
      }
    }
    return sent;
  }

  // Reads until the server closes the connection, an error, or the deadline; returns the bytes.
  std::string ReadUntilClose() {
    std::string out;
    char buffer[16384];
    while (connected_) {
      const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) {
        out.append(buffer, static_cast<size_t>(n));
      } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (!Wait(POLLIN)) break;
      } else {
        break;  // closed (0) or reset
      }
    }
    return out;
  }

  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }

 private:
  // Waits for `events` until the deadline; false on timeout or error.
  bool Wait(short events) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{fd_, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left));
      if (n > 0) return true;
      if (n < 0 && errno != EINTR) return false;
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  Clock::time_point deadline_;
};

// The status code of a raw HTTP response ("HTTP/1.1 400 Bad Request" gives 400); 0 when none.
int StatusOf(const std::string& response) {
  if (response.compare(0, 5, "HTTP/") != 0) return 0;
  const size_t space = response.find(' ');
  if (space == std::string::npos) return 0;
  return std::atoi(response.c_str() + space + 1);
}

// A training-like thread: every kStepPeriod_s it calls Metrics::OnStep, timing each call. A
// missed period is skipped, not caught up, so a call that blocks lowers the step rate.
class Stepper {
 public:
  explicit Stepper(Metrics& metrics) : metrics_(metrics), thread_([this] { Run(); }) {}
  ~Stepper() { Stop(); }
  Stepper(const Stepper&) = delete;
  Stepper& operator=(const Stepper&) = delete;

  void Stop() {
    running_ = false;
    if (thread_.joinable()) thread_.join();
  }

  // What the thread did between a window's start and now.
  struct Window {
    double steps_per_s = 0;
    double max_call_s = 0;
  };
  void StartWindow() {
    window_start_ = Clock::now();
    window_steps_ = steps_.load();
    max_call_ns_ = 0;
  }
  Window EndWindow() const {
    const double seconds = SecondsSince(window_start_);
    return {static_cast<double>(steps_.load() - window_steps_) / seconds, static_cast<double>(max_call_ns_) * 1e-9};
  }

 private:
  void Run() {
    const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(kStepPeriod_s));
    auto next = Clock::now();
    while (running_) {
      const auto start = Clock::now();
      metrics_.OnStep(kStepPeriod_s, 64, 2.3, 0.0001, 0.0002, 0);
      const int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
      int64_t seen = max_call_ns_.load();
      while (ns > seen && !max_call_ns_.compare_exchange_weak(seen, ns)) {
      }
      ++steps_;
      next = std::max(next + period, Clock::now());
      std::this_thread::sleep_until(next);
    }
  }

  Metrics& metrics_;
  std::atomic<bool> running_{true};
  std::atomic<int64_t> steps_{0};
  std::atomic<int64_t> max_call_ns_{0};
  Clock::time_point window_start_;
  int64_t window_steps_ = 0;
  std::thread thread_;  // last: starts after the members it uses
};

// Each test: a fresh endpoint on 127.0.0.1 (port 0) with the stepper running, its baseline step
// rate measured before the abuse.
class BadHttp : public ::testing::Test {
 protected:
  void SetUp() override {
    MetricsOptions o;
    o.port_base = 0;
    o.bind = "127.0.0.1";
    metrics_ = std::make_unique<Metrics>(o);
    ASSERT_EQ(metrics_->Start(), "");
    port_ = metrics_->port();
    ASSERT_GT(port_, 0);
    stepper_ = std::make_unique<Stepper>(*metrics_);
    stepper_->StartWindow();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    baseline_ = stepper_->EndWindow();
    ASSERT_GT(baseline_.steps_per_s, 0);
    stepper_->StartWindow();
  }

  void TearDown() override {
    if (stepper_) stepper_->Stop();
  }

  // A normal scrape: GET /metrics answers 200 with the series within kScrapeBound_s.
  void ExpectScrapeAnswers(const std::string& when) {
    const auto start = Clock::now();
    const HttpResponse r = HttpGet("127.0.0.1", port_, "/metrics", kScrapeBound_s + 3);
    const double took = SecondsSince(start);
    EXPECT_EQ(r.status, 200) << when << ": " << r.error;
    EXPECT_LT(took, kScrapeBound_s) << when << ": GET /metrics took " << took << " s";
    EXPECT_TRUE(Contains(r.body, "trainguard_steps_total{")) << when;
    std::printf("[ scrape  ] %s: %d in %.3f s\n", when.c_str(), r.status, took);
  }

  // The stepper, since SetUp's baseline: no call held up, the rate within kMinStepRateRatio.
  void ExpectStepperUnaffected(const std::string& during) {
    const Stepper::Window w = stepper_->EndWindow();
    std::printf("[ stepper ] %s: %.0f steps/s (baseline %.0f), longest OnStep %.6f s\n", during.c_str(), w.steps_per_s,
                baseline_.steps_per_s, w.max_call_s);
    EXPECT_LT(w.max_call_s, kStepLatencyBound_s) << "an OnStep call was held up during " << during;
    EXPECT_GT(w.steps_per_s, kMinStepRateRatio * baseline_.steps_per_s)
        << "the step rate dropped during " << during << " (baseline " << baseline_.steps_per_s << " steps/s)";
    stepper_->StartWindow();
  }

  // Stops the stepper, then the endpoint: within kStopBound_s (with slack for a loaded machine),
  // and the port is closed afterwards.
  void ExpectStopsWithinASecond(const std::string& after) {
    stepper_->Stop();
    const auto start = Clock::now();
    metrics_.reset();
    const double took = SecondsSince(start);
    std::printf("[ stop    ] after %s: %.3f s\n", after.c_str(), took);
    EXPECT_LT(took, kStopBound_s + 0.5) << "stopping the endpoint after " << after;
    EXPECT_EQ(HttpGet("127.0.0.1", port_, "/metrics", 1).status, 0) << "still serving after the stop";
  }

  std::unique_ptr<Metrics> metrics_;
  int port_ = 0;
  std::unique_ptr<Stepper> stepper_;
  Stepper::Window baseline_;
};

std::string RandomBytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string out(size, '\0');
  for (char& c : out) c = static_cast<char>(byte(rng));
  return out;
}

TEST_F(BadHttp, GarbageBytesAreAnsweredOrDroppedAndScrapesGoOn) {
  // Binary garbage then a half-close, garbage that ends like a header, a TLS hello, and request
  // lines that are not HTTP: each connection ends (an error status or a close) at once and takes
  // no worker with it. Round after round for kAbuse_s, at most 50 rounds.
  const std::vector<std::string> garbage = {RandomBytes(4096, 1),
                                            RandomBytes(4096, 2) + "\r\n\r\n",
                                            "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                                            "NOT-A-METHOD /metrics HTTP/9.9\r\n\r\n",
                                            "GET /metrics\r\n\r\n",
                                            std::string(8192, '\0') + "\r\n\r\n"};
  const auto start = Clock::now();
  for (int round = 0; round < 50 && SecondsSince(start) < kAbuse_s; ++round) {
    for (size_t i = 0; i < garbage.size(); ++i) {
      Client c(port_, 5);
      ASSERT_TRUE(c.connected());
      c.Send(garbage[i]);
      c.ShutdownWrite();
      const auto sent = Clock::now();
      const std::string response = c.ReadUntilClose();
      const double took = SecondsSince(sent);
      if (round == 0) {
        std::printf("[ garbage ] #%zu: status %d, %zu bytes back, closed after %.3f s\n", i, StatusOf(response),
                    response.size(), took);
      }
      EXPECT_LT(took, kScrapeBound_s) << "garbage #" << i << " kept its connection open";
      EXPECT_NE(StatusOf(response), 200) << "garbage #" << i << " was served as a scrape";
    }
    ExpectScrapeAnswers("after garbage round " + std::to_string(round));
    if (HasFailure()) return;
  }
  ExpectStepperUnaffected("garbage");
  ExpectStopsWithinASecond("garbage");
}

TEST_F(BadHttp, OneMegabyteHeaderIsRefusedAndScrapesGoOn) {
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
  const auto start = Clock::now();
  for (int i = 0; i < 20 && SecondsSince(start) < kAbuse_s; ++i) {
    Client c(port_, 5);
    ASSERT_TRUE(c.connected());
    const auto sent_at = Clock::now();
    const size_t sent = c.Send(request);
    const std::string response = c.ReadUntilClose();
    const double took = SecondsSince(sent_at);
    std::printf("[ 1 MB    ] #%d: %zu of %zu bytes taken, status %d, closed after %.3f s\n", i, sent, request.size(),
                StatusOf(response), took);
    EXPECT_LT(took, kScrapeBound_s) << "the 1 MB header kept its connection open";
    EXPECT_NE(StatusOf(response), 200) << "a 1 MB header was served";
    ExpectScrapeAnswers("after 1 MB header #" + std::to_string(i));
    if (HasFailure()) return;
  }
  ExpectStepperUnaffected("1 MB headers");
  ExpectStopsWithinASecond("1 MB headers");
}

// Opens `count` connections that each send half a request line and then nothing, and scrapes
// every 300 ms for hold_s while they stay open; the connections are left in *held.
void HoldHalfRequests(int port, int count, double hold_s, const std::function<void(const std::string&)>& scrape,
                      std::vector<std::unique_ptr<Client>>* held) {
  for (int i = 0; i < count; ++i) {
    held->push_back(std::make_unique<Client>(port, hold_s + 5));
    ASSERT_TRUE(held->back()->connected());
    ASSERT_EQ(held->back()->Send("GET /metr"), 9u);
  }
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let the workers pick them up
  int scrapes = 0;
  while (SecondsSince(start) < hold_s) {
    scrape(std::to_string(count) + " half requests open, scrape " + std::to_string(++scrapes));
    if (::testing::Test::HasFailure()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
}

// The server has closed each of `held` (its read ends at once instead of at the client's deadline).
void ExpectDroppedByTheServer(std::vector<std::unique_ptr<Client>>& held) {
  for (size_t i = 0; i < held.size(); ++i) {
    const auto start = Clock::now();
    const std::string response = held[i]->ReadUntilClose();
    EXPECT_LT(SecondsSince(start), 0.5) << "half request " << i << " is still held open by the endpoint";
    EXPECT_NE(StatusOf(response), 200) << "half request " << i << " was served";
  }
}

TEST_F(BadHttp, RequestThatNeverFinishesDoesNotBlockScrapes) {
  std::vector<std::unique_ptr<Client>> held;
  HoldHalfRequests(
      port_, 1, 3, [this](const std::string& when) { ExpectScrapeAnswers(when); }, &held);
  ExpectStepperUnaffected("a never-finishing request");
  ExpectDroppedByTheServer(held);
  ExpectStopsWithinASecond("a never-finishing request");
}

TEST_F(BadHttp, NeverFinishingRequestsOnEveryWorkerDelayScrapesBriefly) {
  // One more half request than the endpoint has worker threads (2): every worker waits on one and
  // the third waits its turn ahead of the scrape, which waits until the endpoint's 1 s request
  // timeout drops the first two. (With civetweb's default of 30 s, a scrape behind two of them
  // waited 29.9 s.)
  std::vector<std::unique_ptr<Client>> held;
  HoldHalfRequests(
      port_, 3, 4, [this](const std::string& when) { ExpectScrapeAnswers(when); }, &held);
  ExpectStepperUnaffected("3 never-finishing requests");
  ExpectDroppedByTheServer(held);
  ExpectStopsWithinASecond("3 never-finishing requests");
}

TEST_F(BadHttp, StopsWithinASecondWhileARequestNeverFinishes) {
  Client held(port_, 10);
  ASSERT_TRUE(held.connected());
  ASSERT_EQ(held.Send("GET /metr"), 9u);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ExpectStopsWithinASecond("a never-finishing request still open");
}

TEST_F(BadHttp, SixtyFourClientsAtOnceAreServedAndScrapesGoOn) {
  // 64 clients at once, each repeating for kAbuse_s (at most 20 times): half of them scrape, and
  // every scrape must be served (a storm is served, not dropped); the other half connect and close
  // at once, as a port scanner or a TCP health check does.
  std::atomic<int> scrapes{0};
  std::atomic<int> served{0};
  std::atomic<int> failed_connects{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      const auto start = Clock::now();
      for (int n = 0; n < 20 && SecondsSince(start) < kAbuse_s; ++n) {
        Client c(port_, kClientBound_s);
        if (!c.connected()) {
          ++failed_connects;
          continue;
        }
        if (i % 2 == 1) continue;  // connect and close
        ++scrapes;
        c.Send("GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        const std::string response = c.ReadUntilClose();
        if (StatusOf(response) == 200 && Contains(response, "trainguard_steps_total{")) ++served;
      }
    });
  }
  const auto start = Clock::now();
  go = true;
  for (int n = 0; n < 3; ++n) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ExpectScrapeAnswers("during 64 concurrent clients, scrape " + std::to_string(n + 1));
  }
  for (auto& t : clients) t.join();
  const double took = SecondsSince(start);
  std::printf("[ storm   ] %d of %d scrapes served, %d connects failed, all %d clients done in %.3f s\n", served.load(),
              scrapes.load(), failed_connects.load(), kClients, took);
  EXPECT_EQ(failed_connects.load(), 0);
  EXPECT_GT(scrapes.load(), 0);
  EXPECT_EQ(served.load(), scrapes.load());
  EXPECT_LT(took, kClientBound_s);
  ExpectScrapeAnswers("after 64 concurrent clients");
  ExpectStepperUnaffected("64 concurrent clients");
  ExpectStopsWithinASecond("64 concurrent clients");
}

}  // namespace
}  // namespace trainguard
