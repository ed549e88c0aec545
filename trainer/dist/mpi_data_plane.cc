// MPI data plane (see mpi_data_plane.h).
#include "trainer/dist/mpi_data_plane.h"

#include "trainer/core/errors.h"
#include "trainer/dist/mpi_check.h"

namespace trainguard {
namespace {

MPI_Datatype MpiTypeOf(const torch::Tensor& t) {
  // Dense in any layout (channels-last weights too): MPI sees bytes, and every rank holds the
  // same tensor in the same layout.
  if (t.device().type() != torch::kCPU || !t.is_non_overlapping_and_dense()) {
    throw CommError("MPI data plane needs dense CPU tensors");
  }
  switch (t.scalar_type()) {
    case torch::kFloat32: return MPI_FLOAT;
    case torch::kFloat64: return MPI_DOUBLE;
    case torch::kInt64: return MPI_INT64_T;
    default: throw CommError(std::string("MPI data plane: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

class MpiPending final : public PendingReduce {
 public:
  MpiPending(torch::Tensor t, MPI_Comm comm, WaitGuard* guard) : tensor_(std::move(t)), guard_(guard) {
    TG_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, tensor_.data_ptr(), static_cast<int>(tensor_.numel()),
                                MpiTypeOf(tensor_), MPI_SUM, comm, &request_));
  }
  // An abandoned all-reduce (the step failed) is left to the process exit, never waited on here:
  // its peers may be gone.
  ~MpiPending() override = default;
  void Wait() override { WaitFor(request_, guard_); }

 private:
  torch::Tensor tensor_;  // keeps the buffer alive while MPI uses it
  WaitGuard* guard_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

}  // namespace

MpiDataPlane::MpiDataPlane(MPI_Comm comm) { TG_MPI_CHECK(MPI_Comm_dup(comm, &comm_)); }

MpiDataPlane::~MpiDataPlane() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<PendingReduce> MpiDataPlane::StartSum(torch::Tensor tensor) {
  return std::make_unique<MpiPending>(std::move(tensor), comm_, guard_);
}

void MpiDataPlane::Broadcast(torch::Tensor tensor, int root) {
  TG_MPI_CHECK(MPI_Bcast(tensor.data_ptr(), static_cast<int>(tensor.numel()), MpiTypeOf(tensor), root, comm_));
}

}  // namespace trainguard
