// An in-process ControlPlane for tests: N ranks are N threads sharing a ThreadGroup. Each
// collective gathers every rank's value, then every rank computes the result from the same
// gathered values, so results match MPI's. Pure: no MPI, no Torch.
#pragma once

#include <any>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "trainer/core/control_plane.h"

namespace trainguard::testing {

class ThreadGroup {
 public:
  explicit ThreadGroup(int world) : world_(world), slots_(static_cast<size_t>(world)) {}
  int world() const { return world_; }

  // Every rank passes its value; every rank gets all values, indexed by rank.
  std::vector<std::any> Gather(int rank, std::any value) {
    std::unique_lock<std::mutex> lock(mutex_);
    Barrier(lock);  // nobody writes a slot while a slow rank still reads the previous round
    slots_[static_cast<size_t>(rank)] = std::move(value);
    Barrier(lock);
    return slots_;
  }

 private:
  void Barrier(std::unique_lock<std::mutex>& lock) {
    const long generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

  const int world_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  long generation_ = 0;
  std::vector<std::any> slots_;
};

class ThreadControlPlane final : public ControlPlane {
 public:
  ThreadControlPlane(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world() const override { return group_.world(); }
  void AllReduceSum(std::vector<int64_t>& v) override {
    Reduce(v, [](int64_t a, int64_t b) { return a + b; });
  }
  void AllReduceSum(std::vector<double>& v) override {
    Reduce(v, [](double a, double b) { return a + b; });
  }
  void AllReduceMax(std::vector<int64_t>& v) override {
    Reduce(v, [](int64_t a, int64_t b) { return std::max(a, b); });
  }
  void Broadcast(std::string& bytes, int root) override {
    bytes = std::any_cast<std::string>(group_.Gather(rank_, bytes)[static_cast<size_t>(root)]);
  }

  std::vector<std::string> AllGather(const std::string& bytes) override {
    std::vector<std::string> out;
    for (const auto& v : group_.Gather(rank_, bytes)) out.push_back(std::any_cast<std::string>(v));
    return out;
  }

 private:
  template <typename T, typename Op>
  void Reduce(std::vector<T>& v, Op op) {
    const auto all = group_.Gather(rank_, v);
    std::vector<T> out = std::any_cast<std::vector<T>>(all[0]);
    for (size_t r = 1; r < all.size(); ++r) {
      const auto& other = std::any_cast<const std::vector<T>&>(all[r]);
      for (size_t i = 0; i < out.size(); ++i) out[i] = op(out[i], other[i]);
    }
    v = std::move(out);
  }

  ThreadGroup& group_;
  int rank_;
};

// Runs body(control) on `world` threads, one per rank, and joins them.
inline void RunRanks(int world, const std::function<void(ControlPlane&)>& body) {
  ThreadGroup group(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&group, &body, r] {
      ThreadControlPlane control(group, r);
      body(control);
    });
  }
  for (auto& t : threads) t.join();
}

}  // namespace trainguard::testing
