// MPI implementation of the control plane, and the MPI error check.
#include "trainer/comm/mpi_control_plane.h"

#include <unistd.h>

#include <chrono>
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

void MpiControlPlane::AllReduceSum(std::vector<int64_t>& v) {
  MPI_Request request;
  TG_MPI_CHECK(
      MPI_Iallreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_INT64_T, MPI_SUM, comm_, &request));
  WaitFor(request, guard_);
}

void MpiControlPlane::AllReduceSum(std::vector<double>& v) {
  MPI_Request request;
  TG_MPI_CHECK(
      MPI_Iallreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_SUM, comm_, &request));
  WaitFor(request, guard_);
}

void MpiControlPlane::AllReduceMax(std::vector<int64_t>& v) {
  MPI_Request request;
  TG_MPI_CHECK(
      MPI_Iallreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_INT64_T, MPI_MAX, comm_, &request));
  WaitFor(request, guard_);
}

void MpiControlPlane::Broadcast(std::string& bytes, int root) {
  int64_t size = static_cast<int64_t>(bytes.size());
  MPI_Request request;
  TG_MPI_CHECK(MPI_Ibcast(&size, 1, MPI_INT64_T, root, comm_, &request));
  WaitFor(request, guard_);
  bytes.resize(static_cast<size_t>(size));
  TG_MPI_CHECK(MPI_Ibcast(bytes.data(), static_cast<int>(size), MPI_CHAR, root, comm_, &request));
  WaitFor(request, guard_);
}

std::vector<std::string> MpiControlPlane::AllGather(const std::string& bytes) {
  int mine = static_cast<int>(bytes.size());
  std::vector<int> sizes(static_cast<size_t>(world_)), offsets(static_cast<size_t>(world_));
  MPI_Request request;
  TG_MPI_CHECK(MPI_Iallgather(&mine, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm_, &request));
  WaitFor(request, guard_);
  int total = 0;
  for (int r = 0; r < world_; ++r) {
    offsets[static_cast<size_t>(r)] = total;
    total += sizes[static_cast<size_t>(r)];
  }
  std::string all(static_cast<size_t>(total), '\0');
  TG_MPI_CHECK(MPI_Iallgatherv(bytes.data(), mine, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR, comm_,
                               &request));
  WaitFor(request, guard_);
  std::vector<std::string> out;
  for (int r = 0; r < world_; ++r) {
    out.push_back(all.substr(static_cast<size_t>(offsets[static_cast<size_t>(r)]),
                             static_cast<size_t>(sizes[static_cast<size_t>(r)])));
  }
  return out;
}

}  // namespace trainguard
