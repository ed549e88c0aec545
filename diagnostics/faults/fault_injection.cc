// Fault injection (see fault_injection.h).
#include "diagnostics/faults/fault_injection.h"

#include <csignal>
#include <limits>
#include <sstream>
#include <thread>

#include "trainer/core/errors.h"
#include "trainer/core/host_addresses.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

// cudaErrorIllegalAddress: a fault of the GPU or its node (trainer/step_errors.cc), exit 14.
constexpr int32_t kInjectedGpuFaultCode = 700;

}  // namespace

FaultSpec ParseFaultSpec(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return ConfigError(
        "--inject-fault " + text + ": " + why +
        " (expected KIND:rank=R:step=K[:seconds=S][:when=after][:host=H] with KIND nan, kill, sleep, "
        "slow, slow-diagnosis, slow-checkpoint, slow-validation, gpu-fault, nan-weight or bf16-overflow)");
  };
  std::istringstream in(text);
  std::string part;
  std::getline(in, part, ':');
  FaultSpec spec;
  if (part == "nan")
    spec.kind = FaultSpec::Kind::kNan;
  else if (part == "kill")
    spec.kind = FaultSpec::Kind::kKill;
  else if (part == "sleep")
    spec.kind = FaultSpec::Kind::kSleep;
  else if (part == "slow")
    spec.kind = FaultSpec::Kind::kSlow;
  else if (part == "slow-diagnosis")
    spec.kind = FaultSpec::Kind::kSlowDiagnosis;
  else if (part == "slow-checkpoint")
    spec.kind = FaultSpec::Kind::kSlowCheckpoint;
  else if (part == "slow-validation")
    spec.kind = FaultSpec::Kind::kSlowValidation;
  else if (part == "gpu-fault")
    spec.kind = FaultSpec::Kind::kGpuFault;
  else if (part == "nan-weight")
    spec.kind = FaultSpec::Kind::kNanWeight;
  else if (part == "bf16-overflow")
    spec.kind = FaultSpec::Kind::kBf16Overflow;
  else
    throw bad("unknown kind '" + part + "'");
  bool have_rank = false, have_step = false;
  while (std::getline(in, part, ':')) {
    const auto eq = part.find('=');
    if (eq == std::string::npos) throw bad("'" + part + "' is not key=value");
    const std::string key = part.substr(0, eq), value = part.substr(eq + 1);
    try {
      size_t used = 0;
      if (key == "rank") {
        spec.rank = std::stoi(value, &used);
        have_rank = true;
      } else if (key == "step") {
        spec.step = std::stoll(value, &used);
        have_step = true;
      } else if (key == "seconds") {
        spec.seconds = std::stod(value, &used);
      } else if (key == "host") {
        if (value.empty()) throw bad("host= needs a host name");
        spec.host = value;
        used = value.size();
      } else if (key == "when" && (value == "after" || value == "before")) {
        spec.after_step = value == "after";
        used = value.size();
      } else {
        throw bad("unknown key '" + key + "'");
      }
      if (used != value.size()) throw bad("'" + value + "' is not a number");
    } catch (const std::logic_error&) {
      throw bad("'" + value + "' is not a number");
    }
  }
  if (!have_rank || !have_step || spec.step < 1 || spec.rank < 0) throw bad("rank >= 0 and step >= 1 are required");
  if (spec.seconds < 0) throw bad("seconds must not be negative");
  return spec;
}

FaultInjector::FaultInjector(std::vector<FaultSpec> specs, int rank) : rank_(rank) {
  const std::string here = HostName();
  for (FaultSpec& s : specs) {
    if (s.host.empty() || s.host == here) specs_.push_back(std::move(s));
  }
}

void FaultInjector::BeforeStep(const StepReport& where, Batch& batch) {
  for (const FaultSpec& s : specs_) {
    if (s.kind == FaultSpec::Kind::kSlow && s.rank == rank_ && where.global_step >= s.step) {
      if (where.global_step == s.step) {
        LogLine("injected fault: sleeping " + std::to_string(s.seconds) + " s in every step from step " +
                std::to_string(where.global_step) + " on");
      }
      std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
      continue;
    }
    if (s.rank != rank_ || s.step != where.global_step || s.after_step) continue;
    switch (s.kind) {
      case FaultSpec::Kind::kNan:
        LogLine("injected fault: NaN in row 0 of step " + std::to_string(where.global_step));
        batch.images[0].view(-1)[0] = std::numeric_limits<float>::quiet_NaN();
        break;
      case FaultSpec::Kind::kKill:
        LogLine("injected fault: SIGKILL at step " + std::to_string(where.global_step));
        std::raise(SIGKILL);
        break;
      case FaultSpec::Kind::kSleep:
        LogLine("injected fault: sleeping " + std::to_string(s.seconds) + " s in step " +
                std::to_string(where.global_step));
        std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
        break;
      case FaultSpec::Kind::kGpuFault:
        LogLine("injected fault: a GPU fault (CUDA error 700) in step " + std::to_string(where.global_step));
        throw c10::AcceleratorError({__func__, __FILE__, static_cast<uint32_t>(__LINE__)}, kInjectedGpuFaultCode,
                                    "CUDA error: an illegal memory access was encountered (injected)");
      case FaultSpec::Kind::kBf16Overflow: {
        LogLine("injected fault: a pixel of 3.4e38 (beyond bf16's range) in row 0 of step " +
                std::to_string(where.global_step));
        const int64_t side = batch.images.size(-1);
        batch.images[0][0][side / 2][side / 2] = 3.4e38f;
        break;
      }
      case FaultSpec::Kind::kNanWeight:  // acts after the step's update (AfterStep)
      case FaultSpec::Kind::kSlow:       // handled above: every step from K on
      case FaultSpec::Kind::kSlowDiagnosis:
      case FaultSpec::Kind::kSlowCheckpoint:
      case FaultSpec::Kind::kSlowValidation:
        break;  // act in the diagnosis (DelayDiagnosis), a checkpoint or a validation, not in the step
    }
  }
}

void FaultInjector::AfterStep(const StepReport& where, torch::nn::Module& model) {
  for (const FaultSpec& s : specs_) {
    if (s.kind != FaultSpec::Kind::kNanWeight || s.rank != rank_ || s.step != where.global_step) continue;
    const auto params = model.named_parameters();
    LogLine("injected fault: NaN in " + params.front().key() + " after the update of step " +
            std::to_string(where.global_step));
    torch::NoGradGuard no_grad;
    torch::Tensor element = params.front().value();  // its first element, whatever the memory layout
    while (element.dim() > 0) element = element[0];
    element.fill_(std::numeric_limits<float>::quiet_NaN());
  }
}

void FaultInjector::OnEpochBegin(int64_t epoch, EpochPlan&) {
  for (const FaultSpec& s : specs_) {
    if (s.kind != FaultSpec::Kind::kSlowValidation || s.rank != rank_ || last_step_ + 1 < s.step) continue;
    LogLine("injected fault: the label validation before epoch " + std::to_string(epoch + 1) + " sleeps " +
            std::to_string(s.seconds) + " s");
    std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  }
}

void FaultInjector::OnCheckpoint(int64_t global_step, double, int64_t) {
  for (const FaultSpec& s : specs_) {
    if (s.kind != FaultSpec::Kind::kSlowCheckpoint || s.rank != rank_ || global_step < s.step) continue;
    LogLine("injected fault: the checkpoint after step " + std::to_string(global_step) + " takes " +
            std::to_string(s.seconds) + " s more to write");
    std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  }
}

void FaultInjector::OnStepEnd(const StepReport& where) {
  last_step_ = where.global_step;
  for (const FaultSpec& s : specs_) {
    if (s.rank != rank_ || s.step != where.global_step || !s.after_step) continue;
    if (s.kind == FaultSpec::Kind::kKill) {
      LogLine("injected fault: SIGKILL after step " + std::to_string(where.global_step));
      std::raise(SIGKILL);
    } else if (s.kind == FaultSpec::Kind::kSleep) {
      LogLine("injected fault: sleeping " + std::to_string(s.seconds) + " s after step " +
              std::to_string(where.global_step));
      std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
    }
  }
}

void DelayDiagnosis(const std::vector<FaultSpec>& specs, int rank, int64_t step) {
  for (const FaultSpec& s : specs) {
    if (s.kind != FaultSpec::Kind::kSlowDiagnosis || s.rank != rank || s.step != step) continue;
    LogLine("injected fault: the diagnosis sleeps " + std::to_string(s.seconds) + " s");
    std::this_thread::sleep_for(std::chrono::duration<double>(s.seconds));
  }
}

}  // namespace trainguard
