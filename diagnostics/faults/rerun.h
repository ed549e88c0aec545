// The re-run of a failed step as training ran it, for the diagnosis (diagnose.h): the model from
// the bundle's weights in training mode (BatchNorm over the batch's own statistics) or eval mode,
// the forward pass and the loss in fp32 or under bf16 autocast, the summed cross-entropy divided
// by the step's global count of valid targets, backward, and the sum of the gradients' norms
// that the step checks. Each re-run starts from the bundle's weights and buffers afresh, so
// BatchNorm's running statistics do not carry from one re-run to the next.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "diagnostics/faults/bundle.h"

namespace trainguard {

// The time a diagnosis has (the failing rank stops it at --fault-grace minus 5 s): the
// optional re-runs (the other modes, bisection) run only while one more fits, judged by the
// longest re-run so far.
class Budget {
 public:
  explicit Budget(double seconds = 0);           // <= 0: no limit
  void Took(double seconds) const;               // a re-run took this long
  bool Fits() const;                             // twice the longest re-run so far fits before the deadline
  bool exhausted() const { return exhausted_; }  // Fits() said no at least once

 private:
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  mutable double longest_s_ = 0;
  mutable bool exhausted_ = false;
};

struct RerunMode {
  bool training = true;  // BatchNorm with the batch's statistics (false: the running statistics)
  bool bf16 = false;     // autocast bf16 over the forward pass and the loss
  // "training mode, fp32", "eval mode, bf16 autocast".
  std::string Name() const;
};

// What a re-run of some rows met first, in the order the step meets it.
struct RerunOutcome {
  enum class Stage { kPasses, kRaised, kForward, kLoss, kGradient } stage = Stage::kPasses;
  std::string error;     // kRaised: the first line of what was raised
  double loss = 0;       // the loss as the step computes it (summed / divisor)
  double grad_norm = 0;  // the sum of the gradients' norms (fp32), as the step checks it
  bool fails() const { return stage != Stage::kPasses; }
};

// The first module, in forward order, whose output is not finite or that raised.
struct ForwardFinding {
  std::string module;         // "features.0 (Conv2d)"
  std::string operation;      // its type, "Conv2d"
  std::string error;          // what it raised, if it raised
  std::vector<int64_t> rows;  // rows whose output is not finite there
  int64_t index = 0;          // position in the walk (features first, then the classifier)
};

// Backward localisation: the first place, in backward order, where a gradient is not finite,
// as anomaly mode would name it (the backward function), or where the gradients' values are
// finite and a norm overflows.
struct GradientFinding {
  std::string module;          // "classifier.5 (Linear)", or "loss"
  std::string operation;       // the backward function: "AddmmBackward0"
  std::string parameter;       // the first parameter of that module whose gradient is not finite, or ""
  bool values_finite = false;  // every gradient value is finite; a norm overflows fp32
  double largest = 0;          // the largest finite |gradient value| of `parameter` (or the module's input)
};

// Rows of x (first dimension) that hold a non-finite value.
std::vector<int64_t> NonFiniteRows(const torch::Tensor& x);

class Rerun {
 public:
  // `device`: where the re-runs run (the CPU, or the GPU the step ran on when it is usable);
  // each Step's time is told to `budget`, which must outlive the Rerun.
  Rerun(const Bundle& bundle, torch::Device device, const Budget& budget);

  RerunOutcome Step(const RerunMode& mode, const std::vector<int64_t>& rows) const;
  std::optional<ForwardFinding> FirstNonFiniteModule(const RerunMode& mode, const std::vector<int64_t>& rows) const;
  std::optional<GradientFinding> FirstNonFiniteGradient(const RerunMode& mode, const std::vector<int64_t>& rows) const;
  // The largest |value| of the output of the module at `index` (ForwardFinding::index), or
  // +inf when it is not finite.
  double LargestOutput(const RerunMode& mode, const std::vector<int64_t>& rows, int64_t index) const;

  // The smallest failing subset (halving while one half fails alone) of `rows` under `mode`;
  // a superset of it when the budget ran out first.
  std::vector<int64_t> Bisect(const RerunMode& mode, std::vector<int64_t> rows) const;
  std::vector<int64_t> AllRows() const;

  // The model's parameters, then its buffers (true), by name in the model's order.
  std::vector<std::pair<std::string, bool>> WeightNames() const;
  // The module that holds `parameter`: "features.0.weight" -> "features.0 (Conv2d)".
  std::string ModuleOf(const std::string& parameter) const;

  torch::Device device() const { return device_; }

 private:
  RerunOutcome StepUntimed(const RerunMode& mode, const std::vector<int64_t>& rows) const;

  const Bundle& b_;
  torch::Device device_;
  const Budget& budget_;
  int64_t divisor_;  // the step's global count of valid targets
};

}  // namespace trainguard
