// The control plane: the small set of collectives that decide control flow and carry
// counts (valid targets, accuracy, agreement on errors). Every rank must call the same
// collectives in the same order. Implementations: MPI (comm/mpi_control_plane.h) and
// SoloControlPlane below for a single process. Pure interface: no MPI here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace trainguard {

class ControlPlane {
 public:
  virtual ~ControlPlane() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Element-wise sum / max across ranks, in place; every rank passes the same length.
  virtual void AllReduceSum(std::vector<int64_t>& values) = 0;
  virtual void AllReduceSum(std::vector<double>& values) = 0;
  virtual void AllReduceMax(std::vector<int64_t>& values) = 0;
  // Replaces `bytes` on every rank with root's bytes.
  virtual void Broadcast(std::string& bytes, int root) = 0;
  // Every rank's bytes, indexed by rank, on every rank.
  virtual std::vector<std::string> AllGather(const std::string& bytes) = 0;
};

// World of one: every collective is the identity.
class SoloControlPlane final : public ControlPlane {
 public:
  int rank() const override { return 0; }
  int world() const override { return 1; }
  void AllReduceSum(std::vector<int64_t>&) override {}
  void AllReduceSum(std::vector<double>&) override {}
  void AllReduceMax(std::vector<int64_t>&) override {}
  void Broadcast(std::string&, int) override {}
  std::vector<std::string> AllGather(const std::string& bytes) override { return {bytes}; }
};

// Sum of one value across ranks.
int64_t SumAcrossRanks(ControlPlane& control, int64_t value);

// Runs `step` on every rank and agrees on the outcome: if it threw on any rank, every rank
// throws. The rank that failed rethrows its own error; the others throw PeerError naming the
// lowest failing rank and its message, with that error's kind as origin. Keeps ranks from waiting forever in a later
// collective for a rank that already gave up.
template <typename Fn>
void RunAgreed(ControlPlane& control, Fn&& step);

// Implementation detail of RunAgreed: agrees on (failed, kind, message) and throws for peers.
void AgreeOnFailure(ControlPlane& control, const std::exception* failure);

template <typename Fn>
void RunAgreed(ControlPlane& control, Fn&& step) {
  try {
    step();
  } catch (const std::exception& e) {
    AgreeOnFailure(control, &e);
    throw;
  }
  AgreeOnFailure(control, nullptr);
}

}  // namespace trainguard
