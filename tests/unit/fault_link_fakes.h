// Fakes for FaultWatch tests in one process: a switchboard that carries the fault notices of N
// simulated ranks (FakeLink is one rank's FaultLink on it, as FaultChannel is over MPI), a fake
// clock that moves only when the test says, and a bounded wait for a condition.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "diagnostics/faults/fault_watch.h"

namespace trainguard::testing {

class Switchboard {
 public:
  explicit Switchboard(int world) : inboxes_(static_cast<size_t>(world)) {}
  int world() const { return static_cast<int>(inboxes_.size()); }

  // To every rank but the sender, as FaultChannel::Tell does.
  void Send(const FaultNotice& notice) {
    std::lock_guard<std::mutex> lock(mutex_);
    sent_.push_back(notice);
    for (int r = 0; r < world(); ++r) {
      if (r != notice.from) inboxes_[static_cast<size_t>(r)].push_back(notice);
    }
  }
  std::optional<FaultNotice> Receive(int rank) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& inbox = inboxes_[static_cast<size_t>(rank)];
    if (inbox.empty()) return std::nullopt;
    FaultNotice notice = inbox.front();
    inbox.pop_front();
    return notice;
  }
  // Notices sent to `rank` and not read yet.
  size_t Pending(int rank) {
    std::lock_guard<std::mutex> lock(mutex_);
    return inboxes_[static_cast<size_t>(rank)].size();
  }
  // Every notice `rank` sent, in order.
  std::vector<FaultNotice> SentBy(int rank) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<FaultNotice> out;
    for (const auto& n : sent_) {
      if (n.from == rank) out.push_back(n);
    }
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<std::deque<FaultNotice>> inboxes_;
  std::vector<FaultNotice> sent_;
};

class FakeLink final : public FaultLink {
 public:
  FakeLink(Switchboard& board, int rank) : board_(board), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return board_.world(); }
  void Tell(int kind, int64_t step, const std::string& message) override { board_.Send({rank_, kind, step, message}); }
  std::optional<FaultNotice> Poll() override { return board_.Receive(rank_); }

 private:
  Switchboard& board_;
  const int rank_;
};

// A steady clock that starts at 1000 s and moves only by Advance(); thread-safe.
class FakeClock {
 public:
  std::chrono::steady_clock::time_point Now() const {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns_.load()));
  }
  void Advance(double seconds) { ns_ += static_cast<int64_t>(seconds * 1e9); }
  std::function<std::chrono::steady_clock::time_point()> Function() {
    return [this] { return Now(); };
  }

 private:
  std::atomic<int64_t> ns_{1'000'000'000'000};
};

// Polls `condition` until it holds (true) or `limit_s` of real time pass (false).
inline bool WaitUntil(const std::function<bool()>& condition, double limit_s = 20) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(limit_s);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace trainguard::testing
