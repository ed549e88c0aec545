// NCCL data plane via c10d (see nccl_data_plane.h).
#include "trainer/dist/nccl_data_plane.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "trainer/core/errors.h"
#include "trainer/dist/mpi_check.h"

namespace trainguard {
namespace {

// Waits for `work`; with a guard, polls it so that a fault notice or a deadline ends the wait.
void WaitForWork(c10d::Work& work, WaitGuard* guard) {
  if (guard != nullptr) {
    while (!work.isCompleted()) {
      guard->Check();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  work.wait();  // rethrows the work's own failure
}

class NcclPending final : public PendingReduce {
 public:
  NcclPending(c10::intrusive_ptr<c10d::Work> work, WaitGuard* guard) : work_(std::move(work)), guard_(guard) {}
  void Wait() override { WaitForWork(*work_, guard_); }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  WaitGuard* guard_;
};

class NcclDataPlane final : public DataPlane {
 public:
  NcclDataPlane(c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg, WaitGuard* guard) : pg_(std::move(pg)), guard_(guard) {}

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

 private:
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
  WaitGuard* guard_;
};

}  // namespace

std::unique_ptr<DataPlane> MakeNcclDataPlane(MPI_Comm comm, int device_index, WaitGuard* guard) {
  int rank = 0, world = 1;
  TG_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  TG_MPI_CHECK(MPI_Comm_size(comm, &world));

  c10d::TCPStoreOptions opts;
  opts.isServer = rank == 0;
  opts.port = 0;  // rank 0 binds a free port; the others learn it below
  opts.numWorkers = world;
  opts.waitWorkers = false;
  c10::intrusive_ptr<c10d::TCPStore> server;
  char host[256] = {0};
  int port = 0;
  if (rank == 0) {
    gethostname(host, sizeof host - 1);
    server = c10::make_intrusive<c10d::TCPStore>(host, opts);
    port = server->getPort();
  }
  TG_MPI_CHECK(MPI_Bcast(host, sizeof host, MPI_CHAR, 0, comm));
  TG_MPI_CHECK(MPI_Bcast(&port, 1, MPI_INT, 0, comm));

  c10::intrusive_ptr<c10d::Store> store = server;
  if (rank != 0) {
    opts.isServer = false;
    opts.port = static_cast<uint16_t>(port);
    store = c10::make_intrusive<c10d::TCPStore>(host, opts);
  }
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("trainguard", store);
  auto options = c10d::ProcessGroupNCCL::Options::create();
  auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world, options);
  pg->setBoundDeviceId(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(device_index)));
  return std::make_unique<NcclDataPlane>(std::move(pg), guard);
}

}  // namespace trainguard
