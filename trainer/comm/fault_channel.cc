// Out-of-band fault notices over MPI (see fault_channel.h). Wire format of a notice:
// "<kind> <step> <message>" as characters, tag kTag.
#include "trainer/comm/fault_channel.h"

#include <chrono>
#include <sstream>
#include <thread>

#include "trainer/comm/mpi_check.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {
constexpr int kTag = 7177;
}  // namespace

FaultChannel::FaultChannel(MPI_Comm comm) {
  TG_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  TG_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  TG_MPI_CHECK(MPI_Comm_size(comm_, &world_));
}

void FaultChannel::Tell(int kind, int64_t step, const std::string& message) noexcept {
  std::lock_guard<std::mutex> lock(mutex_);
  outgoing_.push_back(std::to_string(kind) + " " + std::to_string(step) + " " + message);
  const std::string& bytes = outgoing_.back();
  for (int r = 0; r < world_; ++r) {
    if (r == rank_) continue;
    try {
      MPI_Request request;
      TG_MPI_CHECK(MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_CHAR, r, kTag, comm_, &request));
      sends_.push_back(request);
    } catch (const std::exception& e) {  // a dead or unreachable peer: the others are still told
      LogLine("could not tell rank " + std::to_string(r) + " of this failure: " + FirstLine(e.what()));
    }
  }
}

std::optional<FaultNotice> FaultChannel::Poll() {
  // A matched probe: the message found is the one received, even if another thread receives too.
  int arrived = 0;
  MPI_Message message;
  MPI_Status status;
  TG_MPI_CHECK(MPI_Improbe(MPI_ANY_SOURCE, kTag, comm_, &arrived, &message, &status));
  if (!arrived) return std::nullopt;
  int size = 0;
  TG_MPI_CHECK(MPI_Get_count(&status, MPI_CHAR, &size));
  std::string bytes(static_cast<size_t>(size), '\0');
  TG_MPI_CHECK(MPI_Mrecv(bytes.data(), size, MPI_CHAR, &message, MPI_STATUS_IGNORE));
  FaultNotice notice;
  notice.from = status.MPI_SOURCE;
  std::istringstream in(bytes);
  in >> notice.kind >> notice.step;
  in.get();  // the space before the message
  std::getline(in, notice.message, '\0');
  return notice;
}

void FaultChannel::TestSends() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (sends_.empty()) return;
  int all_done = 0;
  TG_MPI_CHECK(MPI_Testall(static_cast<int>(sends_.size()), sends_.data(), &all_done, MPI_STATUSES_IGNORE));
  if (all_done) {
    sends_.clear();
    outgoing_.clear();
  }
}

bool FaultChannel::Rendezvous(double timeout_s, const std::function<bool()>& give_up) noexcept {
  try {
    MPI_Request barrier;
    TG_MPI_CHECK(MPI_Ibarrier(comm_, &barrier));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      int done = 0;
      TG_MPI_CHECK(MPI_Test(&barrier, &done, MPI_STATUS_IGNORE));
      TestSends();
      if (done) return true;
      if (give_up && give_up()) return false;
      while (Poll()) {
      }  // drain notices so that senders' buffers complete
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  } catch (const std::exception& e) {  // MPI gave up on a peer: the rendezvous cannot complete
    LogLine("the final rendezvous ended early: " + FirstLine(e.what()));
  }
  return false;
}

}  // namespace trainguard
