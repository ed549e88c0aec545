// MPI data plane (see mpi_data_plane.h).
#include "trainer/comm/mpi_data_plane.h"

#include "trainer/comm/mpi_check.h"
#include "trainer/core/errors.h"

namespace trainguard {
namespace {

MPI_Datatype MpiTypeOf(const torch::Tensor& t) {
  // Dense in any layout (channels-last weights too): MPI sees bytes, and every rank holds the
  // same tensor in the same layout.
  if (t.device().type() != torch::kCPU || !t.is_non_overlapping_and_dense()) {
    throw CommError("MPI data plane needs dense tensors");
  }
  switch (t.scalar_type()) {
    case torch::kFloat32:
      return MPI_FLOAT;
    case torch::kFloat64:
      return MPI_DOUBLE;
    case torch::kInt64:
      return MPI_INT64_T;
    default:
      throw CommError(std::string("MPI data plane: unsupported dtype ") + c10::toString(t.scalar_type()));
  }
}

// A host copy of `t` in the same memory layout; pinned when `t` is on a CUDA device, so that the
// copies run at full speed. Synchronous: MPI reads the buffer as soon as it has it.
torch::Tensor HostCopy(const torch::Tensor& t) {
  auto host = torch::empty_like(t, t.options().device(torch::kCPU).pinned_memory(t.is_cuda()));
  host.copy_(t);
  return host;
}

class MpiPending final : public PendingReduce {
 public:
  // `target` is the tensor the caller sees; `buffer` is what MPI reduces (the same tensor, or
  // its host copy, copied back into `target` by Wait()).
  MpiPending(torch::Tensor target, torch::Tensor buffer, MPI_Comm comm, WaitGuard* guard)
      : target_(std::move(target)), buffer_(std::move(buffer)), guard_(guard) {
    TG_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer_.data_ptr(), static_cast<int>(buffer_.numel()), MpiTypeOf(buffer_),
                                MPI_SUM, comm, &request_));
  }
  // An abandoned all-reduce (the step failed) is left to the process exit, never waited on here:
  // its peers may be gone. MPI may still write into its buffer, which is therefore kept.
  ~MpiPending() override {
    if (request_ != MPI_REQUEST_NULL) KeepUntilExit(std::make_shared<torch::Tensor>(buffer_));
  }
  void Wait() override {
    WaitFor(request_, guard_);
    if (!buffer_.is_same(target_)) target_.copy_(buffer_);
  }

 private:
  torch::Tensor target_;
  torch::Tensor buffer_;  // kept alive while MPI uses it
  WaitGuard* guard_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

}  // namespace

MpiDataPlane::MpiDataPlane(MPI_Comm comm, bool stage_host_tensors) : stage_host_tensors_(stage_host_tensors) {
  TG_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
}

MpiDataPlane::~MpiDataPlane() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

std::unique_ptr<PendingReduce> MpiDataPlane::StartSum(torch::Tensor tensor) {
  torch::Tensor buffer = Staged(tensor) ? HostCopy(tensor) : tensor;
  return std::make_unique<MpiPending>(std::move(tensor), std::move(buffer), comm_, guard_);
}

void MpiDataPlane::Broadcast(torch::Tensor tensor, int root) {
  torch::Tensor buffer = Staged(tensor) ? HostCopy(tensor) : tensor;
  MPI_Request request;
  TG_MPI_CHECK(
      MPI_Ibcast(buffer.data_ptr(), static_cast<int>(buffer.numel()), MpiTypeOf(buffer), root, comm_, &request));
  WaitFor(request, guard_, std::make_shared<torch::Tensor>(buffer));
  if (!buffer.is_same(tensor)) tensor.copy_(buffer);
}

}  // namespace trainguard
