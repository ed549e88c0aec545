// The NCCL data plane's own logic without a GPU: the plane over a c10d::Backend
// (MakeBackendDataPlane; ProcessGroupNCCL in production) driven by a backend written here,
// whose works complete, fail or never complete when the test says, and whose shutdown and abort
// are counted (and can block or throw). c10d's FakeProcessGroup is not used: its header needs
// Python's, and its works never report isCompleted(), so it cannot tell a wait that ends from
// one that hangs.
#include <c10/util/Exception.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include "diagnostics/faults/fault_watch.h"
#include "tests/unit/fault_link_fakes.h"
#include "trainer/comm/nccl_data_plane.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

using Seconds = std::chrono::duration<double>;

// A work that is in flight until Complete(): isCompleted() is false and wait() blocks meanwhile;
// then wait() rethrows the error it completed with, if any (as WorkNCCL::wait does).
class HandWork final : public c10d::Work {
 public:
  bool isCompleted() override { return done_; }
  bool wait(std::chrono::milliseconds) override {
    ++waits;
    std::unique_lock<std::mutex> lock(hand_mutex_);
    hand_cv_.wait(lock, [this] { return done_.load(); });
    if (error_) std::rethrow_exception(error_);
    return true;
  }
  void Complete(std::exception_ptr error = nullptr) {
    std::lock_guard<std::mutex> lock(hand_mutex_);
    error_ = std::move(error);
    done_ = true;
    hand_cv_.notify_all();
  }
  std::atomic<int> waits{0};

 private:
  std::mutex hand_mutex_;
  std::condition_variable hand_cv_;
  std::atomic<bool> done_{false};
  std::exception_ptr error_;
};

// Hands out `work` for every collective and records what the plane asked of it.
class HandBackend final : public c10d::Backend {
 public:
  HandBackend() : c10d::Backend(/*rank=*/0, /*size=*/2) {}
  const std::string getBackendName() const override { return "hand"; }

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override {
    ++allreduces;
    last_tensors = tensors;
    reduce_op = opts.reduceOp.op_;
    return work;
  }
  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override {
    ++broadcasts;
    last_tensors = tensors;
    root = opts.rootRank;
    return work;
  }
  void shutdown() override { ++shutdowns; }
  void abort() override {
    ++aborts;
    if (abort_throws) C10_THROW_ERROR(DistBackendError, "NCCL communicator was aborted: unhandled system error");
    std::unique_lock<std::mutex> lock(abort_mutex_);
    abort_cv_.wait(lock, [this] { return !abort_blocks; });
  }
  // Lets a blocked abort() return.
  void ReleaseAbort() {
    std::lock_guard<std::mutex> lock(abort_mutex_);
    abort_blocks = false;
    abort_cv_.notify_all();
  }

  c10::intrusive_ptr<HandWork> work = c10::make_intrusive<HandWork>();
  std::atomic<int> allreduces{0}, broadcasts{0}, shutdowns{0}, aborts{0};
  std::vector<at::Tensor> last_tensors;
  c10d::ReduceOp::RedOpType reduce_op = c10d::ReduceOp::UNUSED;
  int64_t root = -1;
  bool abort_throws = false;
  bool abort_blocks = false;  // guarded by abort_mutex_ once a plane aborts

 private:
  std::mutex abort_mutex_;
  std::condition_variable abort_cv_;
};

// A guard with a deadline of real time from BeginWait(); counts its calls.
class DeadlineGuard final : public WaitGuard {
 public:
  explicit DeadlineGuard(double deadline_s) : deadline_s_(deadline_s) {}
  void BeginWait() override {
    ++begins;
    until_ = std::chrono::steady_clock::now() +
             std::chrono::duration_cast<std::chrono::steady_clock::duration>(Seconds(deadline_s_));
  }
  void Check() override {
    ++checks;
    if (std::chrono::steady_clock::now() > until_) throw FaultError(ErrorKind::kStall, "deadline passed");
  }
  std::atomic<int> begins{0}, checks{0};  // read by the test while a wait runs

 private:
  const double deadline_s_;
  std::chrono::steady_clock::time_point until_;
};

std::exception_ptr NcclFailure() {
  try {
    C10_THROW_ERROR(DistBackendError, "NCCL error: remote process exited or there was a network error");
  } catch (...) {
    return std::current_exception();
  }
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return Seconds(std::chrono::steady_clock::now() - start).count();
}

TEST(BackendPlane, SumAndBroadcastGoToTheBackendWithTheCallersTensorAndRoot) {
  auto backend = c10::make_intrusive<HandBackend>();
  backend->work->Complete();
  auto plane = MakeBackendDataPlane(backend, nullptr);
  auto t = torch::ones({3});
  auto pending = plane->StartSum(t);
  EXPECT_EQ(backend->allreduces, 1);
  ASSERT_EQ(backend->last_tensors.size(), 1u);
  EXPECT_TRUE(backend->last_tensors[0].is_same(t));
  EXPECT_EQ(backend->reduce_op, c10d::ReduceOp::SUM);
  pending->Wait();
  EXPECT_EQ(backend->work->waits, 1) << "without a guard the wait is the work's own";
  plane->Broadcast(t, 1);
  EXPECT_EQ(backend->broadcasts, 1);
  EXPECT_EQ(backend->root, 1);
  EXPECT_TRUE(backend->last_tensors[0].is_same(t));
}

TEST(BackendPlane, GuardedWaitPollsUntilTheWorkCompletes) {
  auto backend = c10::make_intrusive<HandBackend>();
  DeadlineGuard guard(60);
  auto plane = MakeBackendDataPlane(backend, &guard);
  auto pending = plane->StartSum(torch::ones({2}));
  auto waited = std::async(std::launch::async, [&] { pending->Wait(); });
  ASSERT_TRUE(testing::WaitUntil([&] { return guard.checks > 3; }));
  EXPECT_EQ(waited.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  backend->work->Complete();
  waited.get();
  EXPECT_EQ(guard.begins, 1);
  EXPECT_EQ(backend->work->waits, 1) << "after polling, wait() collects the result (and a failure)";
}

TEST(BackendPlane, SumThatNeverCompletesEndsAtTheGuardsDeadline) {
  auto backend = c10::make_intrusive<HandBackend>();
  DeadlineGuard guard(0.3);
  auto plane = MakeBackendDataPlane(backend, &guard);
  auto pending = plane->StartSum(torch::ones({2}));
  const auto start = std::chrono::steady_clock::now();
  try {
    pending->Wait();
    FAIL() << "a wait for a work that never completes returned";
  } catch (const FaultError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kStall);
  }
  const double waited = SecondsSince(start);
  EXPECT_GE(waited, 0.3);
  EXPECT_LT(waited, 5.0) << "the wait overran its deadline by far";
  EXPECT_EQ(backend->work->waits, 0) << "the hanging work's own wait() was never entered";
  backend->work->Complete();
}

TEST(BackendPlane, FailedWorkRethrowsTheBackendsError) {
  auto backend = c10::make_intrusive<HandBackend>();
  DeadlineGuard guard(60);
  auto plane = MakeBackendDataPlane(backend, &guard);
  backend->work->Complete(NcclFailure());
  EXPECT_THROW(plane->Broadcast(torch::ones({2}), 0), c10::DistBackendError);  // kComm: exit 5
}

// Under the launcher's guard (FaultWatch), with rank 1 simulated: a broadcast that never
// completes ends with rank 1's failure kind once its notice is a second old...
TEST(BackendPlane, PeerNoticeEndsAHangingBroadcastWithThePeersKind) {
  testing::Switchboard board(2);
  testing::FakeLink link0(board, 0), link1(board, 1);
  testing::FakeClock clock;
  FaultWatchOptions o;
  o.step_timeout_s = 30;
  o.now = clock.Function();
  o.on_stuck = [](const std::string&) {};
  FaultWatch watch(link0, o);
  auto backend = c10::make_intrusive<HandBackend>();
  auto plane = MakeBackendDataPlane(backend, &watch);
  watch.Arm(6);
  auto waited = std::async(std::launch::async, [&]() -> std::optional<PeerError> {
    try {
      plane->Broadcast(torch::ones({2}), 0);
    } catch (const PeerError& e) {
      return e;
    }
    return std::nullopt;
  });
  link1.Tell(static_cast<int>(ErrorKind::kDeviceAssert), 6, "CUDA error: device-side assert triggered");
  ASSERT_TRUE(testing::WaitUntil([&] { return board.Pending(0) == 0; }));  // rank 0 read it
  clock.Advance(1.1);
  const auto peer = waited.get();
  ASSERT_TRUE(peer.has_value());
  EXPECT_EQ(peer->origin(), ErrorKind::kDeviceAssert);
  EXPECT_STREQ(peer->what(), "rank 1 failed: CUDA error: device-side assert triggered");
  backend->work->Complete();
}

// ...and a sum in a step that overruns --step-timeout ends with the stall verdict naming the
// rank that did not arrive.
TEST(BackendPlane, HangingSumInAStepEndsWithTheStallVerdict) {
  testing::Switchboard board(2);
  testing::FakeLink link0(board, 0);
  testing::FakeClock clock;
  FaultWatchOptions o;
  o.step_timeout_s = 30;
  o.grace_s = 5;
  o.now = clock.Function();
  o.on_stuck = [](const std::string&) {};
  FaultWatch watch(link0, o);
  auto backend = c10::make_intrusive<HandBackend>();
  auto plane = MakeBackendDataPlane(backend, &watch);
  watch.Arm(7);
  auto pending = plane->StartSum(torch::ones({2}));
  auto waited = std::async(std::launch::async, [&]() -> std::string {
    try {
      pending->Wait();
    } catch (const FaultError& e) {
      return std::string(e.kind() == ErrorKind::kStall ? "" : "(not a stall) ") + e.what();
    }
    return "returned";
  });
  clock.Advance(30.5);
  ASSERT_TRUE(testing::WaitUntil([&] { return board.Pending(1) == 1; }));  // rank 0 announced its wait
  clock.Advance(5.1);
  const std::string text = waited.get();
  EXPECT_EQ(text.rfind("stall in step 7: rank(s) 1 did not arrive within --step-timeout 30 s", 0), 0u) << text;
  backend->work->Complete();
}

TEST(BackendPlane, ShutdownShutsTheBackendDownWithoutAborting) {
  auto backend = c10::make_intrusive<HandBackend>();
  auto plane = MakeBackendDataPlane(backend, nullptr);
  plane->Shutdown();
  EXPECT_EQ(backend->shutdowns, 1);
  EXPECT_EQ(backend->aborts, 0);
}

TEST(BackendPlane, AbortReturnsAtItsDeadlineWhenTheBackendsAbortBlocks) {
  auto backend = c10::make_intrusive<HandBackend>();
  backend->abort_blocks = true;
  auto plane = MakeBackendDataPlane(backend, nullptr);
  const auto start = std::chrono::steady_clock::now();
  plane->Abort(0.3);
  const double waited = SecondsSince(start);
  EXPECT_GE(waited, 0.3);
  EXPECT_LT(waited, 5.0);
  ASSERT_TRUE(testing::WaitUntil([&] { return backend->aborts == 1; }));
  EXPECT_EQ(backend->shutdowns, 0);
  backend->ReleaseAbort();  // the abandoned thread ends (it holds the backend until then)
}

TEST(BackendPlane, AbortReturnsAtOnceWhenTheBackendAbortsOrFailsToAbort) {
  auto backend = c10::make_intrusive<HandBackend>();
  auto plane = MakeBackendDataPlane(backend, nullptr);
  auto start = std::chrono::steady_clock::now();
  plane->Abort(30);
  EXPECT_LT(SecondsSince(start), 5.0);
  EXPECT_EQ(backend->aborts, 1);
  backend->abort_throws = true;  // a broken communicator: nothing left to release
  start = std::chrono::steady_clock::now();
  EXPECT_NO_THROW(plane->Abort(30));
  EXPECT_LT(SecondsSince(start), 5.0);
  EXPECT_EQ(backend->aborts, 2);
}

}  // namespace
}  // namespace trainguard
