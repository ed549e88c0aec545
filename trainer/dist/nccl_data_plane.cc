// NCCL data plane via c10d (see nccl_data_plane.h).
#include "trainer/dist/nccl_data_plane.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <unistd.h>

#include "trainer/core/errors.h"
#include "trainer/dist/mpi_check.h"

namespace trainguard {
namespace {

class NcclPending final : public PendingReduce {
 public:
  explicit NcclPending(c10::intrusive_ptr<c10d::Work> work) : work_(std::move(work)) {}
  void Wait() override { work_->wait(); }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
};

class NcclDataPlane final : public DataPlane {
 public:
  explicit NcclDataPlane(c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg) : pg_(std::move(pg)) {}

  std::unique_ptr<PendingReduce> StartSum(torch::Tensor tensor) override {
    std::vector<torch::Tensor> tensors{std::move(tensor)};
    return std::make_unique<NcclPending>(pg_->allreduce(tensors));
  }

  void Broadcast(torch::Tensor tensor, int root) override {
    std::vector<torch::Tensor> tensors{std::move(tensor)};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    pg_->broadcast(tensors, opts)->wait();
  }

 private:
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> pg_;
};

}  // namespace

std::unique_ptr<DataPlane> MakeNcclDataPlane(MPI_Comm comm, int device_index) {
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
  return std::make_unique<NcclDataPlane>(std::move(pg));
}

}  // namespace trainguard
