// NCCL data plane via c10d (see nccl_data_plane.h).
#include "trainer/comm/nccl_data_plane.h"

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "trainer/comm/store_bootstrap.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

// Waits for `work`; with a guard, polls it so that a fault notice or a deadline ends the wait.
void WaitForWork(c10d::Work& work, WaitGuard* guard) {
  if (guard != nullptr) {
    guard->BeginWait();
    while (!work.isCompleted()) {
      guard->Check();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    guard->EndWait();
  }
  work.wait();  // rethrows the work's own failure (a c10::DistBackendError)
}

class NcclPending final : public PendingReduce {
 public:
  NcclPending(c10::intrusive_ptr<c10d::Work> work, WaitGuard* guard) : work_(std::move(work)), guard_(guard) {}
  void Wait() override { WaitForWork(*work_, guard_); }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  WaitGuard* guard_;
};

class BackendDataPlane final : public DataPlane {
 public:
  BackendDataPlane(c10::intrusive_ptr<c10d::Backend> pg, WaitGuard* guard) : pg_(std::move(pg)), guard_(guard) {}

  std::unique_ptr<PendingReduce> StartSum(torch::Tensor tensor) override {
    std::vector<torch::Tensor> tensors{std::move(tensor)};
    return std::make_unique<NcclPending>(pg_->allreduce(tensors), guard_);
  }

  void Broadcast(torch::Tensor tensor, int root) override {
    std::vector<torch::Tensor> tensors{std::move(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    WaitForWork(*pg_->broadcast(tensors, opts), guard_);
  }

  void Shutdown() override { pg_->shutdown(); }

  // ncclCommAbort can block on a broken device or network: it runs on a detached thread, which
  // is abandoned at the deadline (the process is about to end).
  void Abort(double deadline_s) override {
    auto finished = std::make_shared<std::promise<void>>();
    std::future<void> done = finished->get_future();
    std::thread([pg = pg_, finished] {
      try {
        pg->abort();
      } catch (...) {  // the communicator may already be broken: nothing left to release
      }
      finished->set_value();
    }).detach();
    done.wait_for(std::chrono::duration<double>(deadline_s));
  }

 private:
  c10::intrusive_ptr<c10d::Backend> pg_;
  WaitGuard* guard_;
};

}  // namespace

void SetNcclProcessPolicy() {
  const bool keep = false;  // a value the user set wins
  setenv("TORCH_NCCL_RETHROW_CUDA_ERRORS", "0", keep);
  setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0", keep);
  setenv("TORCH_NCCL_ENABLE_MONITORING", "0", keep);
}

std::unique_ptr<DataPlane> MakeNcclDataPlane(ControlPlane& control, const NcclPlaneOptions& options, WaitGuard* guard) {
  const int rank = control.rank(), world = control.world();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000));

  c10::intrusive_ptr<c10d::Store> store =
      ConnectStore(control, options.store_addr, options.store_port, options.timeout_s);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("trainguard", store);
  auto pg_options = c10d::ProcessGroupNCCL::Options::create();
  pg_options->timeout = timeout;
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, pg_options);
  pg->setBoundDeviceId(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(options.device_index)));
  return MakeBackendDataPlane(std::move(pg), guard);
}

std::unique_ptr<DataPlane> MakeBackendDataPlane(c10::intrusive_ptr<c10d::Backend> backend, WaitGuard* guard) {
  return std::make_unique<BackendDataPlane>(std::move(backend), guard);
}

}  // namespace trainguard
