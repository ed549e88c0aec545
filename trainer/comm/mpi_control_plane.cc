// MPI implementation of the control plane, and the MPI error check.
#include "trainer/comm/mpi_control_plane.h"

#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "trainer/comm/mpi_check.h"
#include "trainer/core/errors.h"

namespace trainguard {

void CheckMpi(int rc, const char* call, const char* file, int line) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  char host[256] = "?";
  gethostname(host, sizeof host - 1);
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  throw CommError(std::string(call) + " failed on " + host + " pid " + std::to_string(getpid()) + " rank " +
                  std::to_string(rank) + " at " + file + ":" + std::to_string(line) + ": " +
                  std::string(text, static_cast<size_t>(len)));
}

void WaitFor(MPI_Request& request, WaitGuard* guard) {
  if (guard == nullptr) {
    TG_MPI_CHECK(MPI_Wait(&request, MPI_STATUS_IGNORE));
    return;
  }
  guard->BeginWait();
  for (int polls = 0;; ++polls) {
    int done = 0;
    TG_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) {
      guard->EndWait();
      return;
    }
    guard->Check();
    // Spin briefly for fast collectives, then yield the core to the ranks we wait for.
    if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void WaitFor(MPI_Request& request, WaitGuard* guard, std::shared_ptr<void> buffers) {
  try {
    WaitFor(request, guard);
  } catch (...) {
    KeepUntilExit(std::move(buffers));
    throw;
  }
}

void KeepUntilExit(std::shared_ptr<void> buffers) {
  static std::mutex mutex;
  // Never destroyed, not even by exit(): the requests may still be pending then.
  static auto* kept = new std::vector<std::shared_ptr<void>>;
  std::lock_guard<std::mutex> lock(mutex);
  kept->push_back(std::move(buffers));
}

namespace {

// An all-reduce of `values` in place, through a buffer of its own that outlives an abandoned wait.
template <class T>
void AllReduce(std::vector<T>& values, MPI_Datatype type, MPI_Op op, MPI_Comm comm, WaitGuard* guard) {
  auto buffer = std::make_shared<std::vector<T>>(values);
  MPI_Request request;
  TG_MPI_CHECK(
      MPI_Iallreduce(MPI_IN_PLACE, buffer->data(), static_cast<int>(buffer->size()), type, op, comm, &request));
  WaitFor(request, guard, buffer);
  values = std::move(*buffer);
}

}  // namespace

MpiControlPlane::MpiControlPlane(MPI_Comm comm) {
  TG_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  TG_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  TG_MPI_CHECK(MPI_Comm_size(comm_, &world_));
}

MpiControlPlane::~MpiControlPlane() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

// Every collective below works on buffers it owns through a shared_ptr handed to WaitFor: a
// wait given up (a fault notice, a deadline) leaves the request pending, and MPI may complete it
// into those buffers later, during the stop protocol's own MPI calls.
void MpiControlPlane::AllReduceSum(std::vector<int64_t>& v) { AllReduce(v, MPI_INT64_T, MPI_SUM, comm_, guard_); }

void MpiControlPlane::AllReduceSum(std::vector<double>& v) { AllReduce(v, MPI_DOUBLE, MPI_SUM, comm_, guard_); }

void MpiControlPlane::AllReduceMax(std::vector<int64_t>& v) { AllReduce(v, MPI_INT64_T, MPI_MAX, comm_, guard_); }

void MpiControlPlane::Broadcast(std::string& bytes, int root) {
  auto size = std::make_shared<int64_t>(static_cast<int64_t>(bytes.size()));
  MPI_Request request;
  TG_MPI_CHECK(MPI_Ibcast(size.get(), 1, MPI_INT64_T, root, comm_, &request));
  WaitFor(request, guard_, size);
  auto payload = std::make_shared<std::string>(rank_ == root ? bytes : std::string(static_cast<size_t>(*size), '\0'));
  TG_MPI_CHECK(MPI_Ibcast(payload->data(), static_cast<int>(*size), MPI_CHAR, root, comm_, &request));
  WaitFor(request, guard_, payload);
  bytes = std::move(*payload);
}

std::vector<std::string> MpiControlPlane::AllGather(const std::string& bytes) {
  struct Buffers {
    int mine = 0;
    std::vector<int> sizes, offsets;
    std::string send, all;
  };
  auto b = std::make_shared<Buffers>();
  b->mine = static_cast<int>(bytes.size());
  b->send = bytes;
  b->sizes.resize(static_cast<size_t>(world_));
  b->offsets.resize(static_cast<size_t>(world_));
  MPI_Request request;
  TG_MPI_CHECK(MPI_Iallgather(&b->mine, 1, MPI_INT, b->sizes.data(), 1, MPI_INT, comm_, &request));
  WaitFor(request, guard_, b);
  int total = 0;
  for (int r = 0; r < world_; ++r) {
    b->offsets[static_cast<size_t>(r)] = total;
    total += b->sizes[static_cast<size_t>(r)];
  }
  b->all.assign(static_cast<size_t>(total), '\0');
  TG_MPI_CHECK(MPI_Iallgatherv(b->send.data(), b->mine, MPI_CHAR, b->all.data(), b->sizes.data(), b->offsets.data(),
                               MPI_CHAR, comm_, &request));
  WaitFor(request, guard_, b);
  std::vector<std::string> out;
  for (int r = 0; r < world_; ++r) {
    out.push_back(b->all.substr(static_cast<size_t>(b->offsets[static_cast<size_t>(r)]),
                                static_cast<size_t>(b->sizes[static_cast<size_t>(r)])));
  }
  return out;
}

}  // namespace trainguard
