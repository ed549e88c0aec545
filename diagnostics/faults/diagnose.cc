// Synchronous re-run and localisation of a failed step (see diagnose.h).
#include "diagnostics/faults/diagnose.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "diagnostics/faults/rerun.h"
#include "trainer/core/log.h"

namespace trainguard {
namespace {

using json = nlohmann::json;
using Stage = RerunOutcome::Stage;

constexpr double kBf16Max = 3.3895313892515355e38;  // bf16's largest finite value

std::string Num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

// Collects what the process writes to stdout and stderr while it is alive: the CUDA runtime
// prints a kernel's failed assertion (file, line, kernel, condition) there, not into the
// exception. Release() restores both streams and writes the collected text through to stderr,
// so nothing is lost from the log.
class CapturedOutput {
 public:
  CapturedOutput() {
    std::fflush(nullptr);
    file_ = std::tmpfile();
    if (file_ == nullptr) return;  // no capture: the output goes where it always goes
    saved_out_ = ::dup(STDOUT_FILENO);
    saved_err_ = ::dup(STDERR_FILENO);
    ::dup2(::fileno(file_), STDOUT_FILENO);
    ::dup2(::fileno(file_), STDERR_FILENO);
  }
  CapturedOutput(const CapturedOutput&) = delete;
  CapturedOutput& operator=(const CapturedOutput&) = delete;
  ~CapturedOutput() { Release(); }

  std::string Release() {
    if (file_ == nullptr) return "";
    std::fflush(nullptr);
    ::dup2(saved_out_, STDOUT_FILENO);
    ::dup2(saved_err_, STDERR_FILENO);
    ::close(saved_out_);
    ::close(saved_err_);
    std::string text;
    std::rewind(file_);
    char chunk[4096];
    for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, file_)) > 0;) text.append(chunk, n);
    std::fclose(file_);
    file_ = nullptr;
    std::fwrite(text.data(), 1, text.size(), stderr);
    return text;
  }

 private:
  std::FILE* file_ = nullptr;
  int saved_out_ = -1, saved_err_ = -1;
};

// The first line of `text` that reports a failed kernel assertion, or "".
std::string AssertionLine(const std::string& text) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("Assertion") != std::string::npos) return line;
  }
  return "";
}

struct Reproduction {
  std::string summary;        // what the re-run did
  std::string device_assert;  // the kernel's failed assertion, when the device printed one
  bool failed = false;        // the step failed as it did in training
  bool device_usable = true;  // the device can run the localisation (no CUDA error)
};

// Reproduces the step as it ran, on the device it ran on (if present).
Reproduction Reproduce(const Bundle& b, const RerunMode& mode, const Budget& budget) {
  torch::Device device = torch::kCPU;
  if (b.meta.device.rfind("cuda", 0) == 0 && torch::cuda::is_available()) device = torch::Device(b.meta.device);
  const std::string where = "re-run on " + device.str() + (device.is_cuda() ? " with CUDA_LAUNCH_BLOCKING=1" : "") +
                            " in " + mode.Name() + ", forward and backward";
  CapturedOutput output;
  Reproduction r;
  try {
    const Rerun rerun(b, device, budget);
    const RerunOutcome o = rerun.Step(mode, rerun.AllRows());
    r.failed = o.fails();
    if (o.stage == Stage::kRaised) {
      r.summary = where + " raised: " + o.error;
      r.device_usable = !device.is_cuda();
    } else {
      r.summary = where + ": loss " + Num(o.loss) +
                  (o.stage == Stage::kForward || o.stage == Stage::kLoss ? "" : ", gradient norm " + Num(o.grad_norm));
    }
  } catch (const std::exception& e) {
    r.summary = where + " raised: " + FirstLine(e.what());
    r.failed = true;
    r.device_usable = !device.is_cuda();
  }
  r.device_assert = AssertionLine(output.Release());
  return r;
}

void NameSamples(Diagnosis& d, const Bundle& b) {
  for (int64_t r : d.rows) {
    const auto i = static_cast<size_t>(r);
    d.samples.push_back(i < b.meta.indices.size() ? b.meta.indices[i] : -1);
    d.files.push_back(i < b.meta.sources.size() ? b.meta.sources[i] : "?");
    d.labels.push_back(i < b.meta.raw_labels.size() ? b.meta.raw_labels[i] : "?");
  }
}

double NormOf(const torch::Tensor& t) { return t.to(torch::kFloat64).norm().item<double>(); }

// The first parameter, then buffer, of the bundle's weights that holds a NaN or an infinity.
struct BadWeight {
  std::string name;
  int64_t nans = 0, infs = 0, values = 0;
  bool buffer = false;
  int64_t others = 0;  // further parameters and buffers that are not finite
};

// The first parameter in the model's order, else the first buffer, that holds a NaN or an infinity.
std::optional<BadWeight> FirstNonFiniteWeight(const Bundle& b, const Rerun& rerun) {
  std::optional<BadWeight> first;
  for (const auto& [name, is_buffer] : rerun.WeightNames()) {
    const auto found = b.weights.find(name);
    if (found == b.weights.end()) continue;
    const torch::Tensor& t = found->second;
    if (!t.is_floating_point() || torch::isfinite(t).all().item<bool>()) continue;
    if (first) {
      ++first->others;
      continue;
    }
    first = BadWeight{name, torch::isnan(t).sum().item<int64_t>(), torch::isinf(t).sum().item<int64_t>(), t.numel(),
                      is_buffer};
  }
  return first;
}

// How the parameter `name` came to hold its values, from the bundle's weight history.
std::string LastChange(const BundleMeta& m, const std::string& name) {
  if (!m.weights_own) return "these weights are a " + m.weights_from + ", not the step's own";
  if (m.last_good_step == 0) {
    return "no step of this run changed it: it holds these values since the weights were built or loaded with " +
           std::to_string(m.weights_ready_step) + " step(s) done (the initialisation or the checkpoint)";
  }
  const auto before = m.last_good_norms.find(name);
  return "the update of step " + std::to_string(m.last_good_step) + " last changed it" +
         (before != m.last_good_norms.end() ? " (its norm was " + Num(before->second) + " at that step's start)" : "");
}

// The weights' growth in the update of the last good step: the parameter that grew most, and
// `named` (when given and known).
std::string Growth(const Bundle& b, const std::string& named) {
  const BundleMeta& m = b.meta;
  if (!m.weights_own || m.last_good_step == 0 || m.last_good_norms.empty()) return "";
  std::string most;
  double most_factor = 0, most_before = 0, most_after = 0;
  for (const auto& [name, before] : m.last_good_norms) {
    const auto now = b.weights.find(name);
    if (now == b.weights.end() || before <= 0) continue;
    const double after = NormOf(now->second);
    if (!std::isfinite(after)) continue;
    if (after / before > most_factor) {
      most = name;
      most_factor = after / before;
      most_before = before;
      most_after = after;
    }
  }
  if (most.empty() || most_factor < 10) return "";  // no parameter grew tenfold: nothing to tell
  std::string text = "in the update of step " + std::to_string(m.last_good_step) + ", the last good step, " + most +
                     "'s norm grew x" + Num(most_factor) + " (" + Num(most_before) + " -> " + Num(most_after) + ")";
  const auto before = m.last_good_norms.find(named);
  const auto now = b.weights.find(named);
  if (!named.empty() && named != most && before != m.last_good_norms.end() && now != b.weights.end()) {
    const double after = NormOf(now->second);
    text +=
        ", " + named + "'s x" + Num(after / before->second) + " (" + Num(before->second) + " -> " + Num(after) + ")";
  }
  return text;
}

// The step under the other precision and in eval mode: `modes` lists each outcome, `differs`
// what fails only under some.
struct Comparison {
  std::string modes, differs;
  std::optional<bool> other_precision_fails, eval_fails;  // none: not tried, the budget ran out
};

Comparison Compare(const Rerun& rerun, const Budget& budget, const RerunMode& trained, bool trained_fails) {
  const RerunMode other{trained.training, !trained.bf16};
  const RerunMode eval{false, trained.bf16};
  Comparison c;
  if (budget.Fits()) c.other_precision_fails = rerun.Step(other, rerun.AllRows()).fails();
  if (budget.Fits()) c.eval_fails = rerun.Step(eval, rerun.AllRows()).fails();
  const auto said = [](std::optional<bool> fails) {
    return !fails ? "not tried (the time ran out)" : *fails ? "fails" : "passes";
  };
  c.modes = std::string(trained_fails ? "fails" : "passes") + " in " + trained.Name() + " (as the step ran); " +
            said(c.other_precision_fails) + " in " + other.Name() + "; " + said(c.eval_fails) + " in " + eval.Name();
  if (!trained_fails) return c;
  const std::string precision = trained.bf16 ? "bf16" : "fp32";
  const bool other_passes = c.other_precision_fails == false, eval_passes = c.eval_fails == false;
  if (other_passes && eval_passes) {
    c.differs = "fails in " + precision + " and training mode only";
  } else if (other_passes) {
    c.differs = "fails in " + precision + " only";
  } else if (eval_passes) {
    c.differs = "fails in training mode only: with the batch's own statistics (BatchNorm), not the running ones";
  }
  return c;
}

// Why a module fails in bf16 and not in fp32: its input or its output exceeds bf16's range.
std::string Bf16Reason(const Bundle& b, const Rerun& rerun, const ForwardFinding& f, const std::vector<int64_t>& rows) {
  const RerunMode fp32{true, false};
  double input = 0;
  if (f.index == 0) {
    const auto idx = torch::tensor(rows, torch::kInt64);
    input = b.images.index_select(0, idx).abs().max().item<double>();
  } else {
    input = rerun.LargestOutput(fp32, rows, f.index - 1);
  }
  const double output = rerun.LargestOutput(fp32, rows, f.index);
  if (input > kBf16Max) {
    return f.module + "'s input exceeds bf16's range (largest |value| " + Num(input) + " in fp32, bf16's largest " +
           Num(kBf16Max) + "): autocast rounds it to infinity";
  }
  if (output > kBf16Max) {
    return f.module + "'s output exceeds bf16's range (largest |value| " + Num(output) + " in fp32, bf16's largest " +
           Num(kBf16Max) + ")";
  }
  return f.module + "'s output is not finite in bf16 while in fp32 its largest |value| is " + Num(output);
}

// The failing rows of a step that fails as it ran: the smallest failing subset, when the rest
// of the batch passes without it (else the batch as a whole is not at fault: none).
std::vector<int64_t> FailingRows(const Rerun& rerun, const Budget& budget, const RerunMode& mode,
                                 const std::vector<int64_t>& start, std::string* note) {
  std::vector<int64_t> rows = rerun.Bisect(mode, start);
  if (budget.exhausted()) {  // a superset: the rest of the batch is not tried
    if (rows.size() > 1 && rows.size() == rerun.AllRows().size()) {
      *note = "; the time ran out before the bisection could single out rows";
      return {};
    }
    return rows;
  }
  if (rows.size() > 1 && rows.size() == rerun.AllRows().size()) {
    *note = "; no half of the batch fails alone: the whole batch's sum fails, no sample is singled out";
    return {};
  }
  std::vector<int64_t> rest;
  for (int64_t r : rerun.AllRows()) {
    if (std::find(rows.begin(), rows.end(), r) == rows.end()) rest.push_back(r);
  }
  if (rest.empty() || !budget.Fits() || !rerun.Step(mode, rest).fails()) return rows;
  *note = "; every part of the batch fails alone (row " + std::to_string(rows[0]) +
          " alone, and the batch without it), so no sample is at fault";
  return {};
}

void NotFinite(Diagnosis& d, const Bundle& b, const Rerun& rerun, const Budget& budget, const RerunMode& mode,
               const RerunOutcome& o) {
  std::string note;
  if (o.stage == Stage::kGradient) {
    const std::optional<GradientFinding> g = rerun.FirstNonFiniteGradient(mode, rerun.AllRows());
    d.fault = "non_finite_gradient";
    if (g) {
      d.module = g->module;
      d.operation = g->operation;
      d.parameter = g->parameter;
      if (g->values_finite) {
        d.detail = "the loss is finite; every gradient value is finite, but the norm of " + g->parameter +
                   "'s gradient overflows fp32 (largest |value| " + Num(g->largest) +
                   "): the first, in backward order, whose norm is not finite";
      } else if (!g->parameter.empty()) {
        d.detail = "the loss is finite; the gradient of " + g->parameter + " is not finite: the first, in backward " +
                   "order, made by " + g->operation;
      } else {
        d.detail = "the loss is finite; the gradient that " + g->module +
                   " passes back to its input is not finite: " + "the first, in backward order, made by " +
                   g->operation;
      }
    } else {
      d.detail = "the loss is finite and every gradient's norm is, but their sum is not";
    }
    d.rows = FailingRows(rerun, budget, mode, rerun.AllRows(), &note);
    d.detail += note;
    d.weights_growth = Growth(b, d.parameter);
    d.hint = d.weights_growth.empty()
                 ? "the gradient overflows on this batch: lower --lr, or check the listed samples for extreme values"
                 : "lower --lr: the update of step " + std::to_string(b.meta.last_good_step) +
                       " grew the weights (see above) until the gradient overflows";
    return;
  }
  const std::optional<ForwardFinding> walk = rerun.FirstNonFiniteModule(mode, rerun.AllRows());
  if (walk && walk->error.empty()) {
    d.fault = "non_finite_activation";
    d.module = walk->module;
    d.operation = walk->operation;
    d.detail = "the output of " + walk->module + " is not finite for " + std::to_string(walk->rows.size()) +
               " row(s) whose inputs are finite";
    d.rows = FailingRows(rerun, budget, mode, walk->rows, &note);
    d.detail += note;
    d.hint =
        "weights or activations overflow: lower --lr, check the weights (resume from an earlier checkpoint), or check "
        "the listed samples for extreme values";
  } else if (walk) {
    d.fault = "exception";
    d.module = walk->module;
    d.operation = walk->operation;
    d.detail = walk->error;
    d.rows = rerun.Bisect(mode, rerun.AllRows());
    d.hint = "the module raised on this batch; the error names the operation";
  } else if (o.stage == Stage::kRaised) {
    d.fault = "exception";
    d.module = "loss";
    d.operation = "cross_entropy / nll_loss";
    d.detail = o.error;
    d.rows = rerun.Bisect(mode, rerun.AllRows());
    d.hint = "the loss or backward raised on this batch; the error names the operation";
  } else {
    d.fault = "non_finite_loss";
    d.module = "loss";
    d.operation = "cross_entropy / nll_loss";
    d.detail = "the loss is not finite while every activation is";
    d.rows = FailingRows(rerun, budget, mode, rerun.AllRows(), &note);
    d.detail += note;
    d.hint = "check the listed samples' targets and the logits' scale";
  }
  d.weights_growth = Growth(b, "");
}

// Targets outside [0, classes) that are not the ignore index: the classic device-side assert.
bool BadLabelVerdict(Diagnosis& d, const Bundle& b) {
  const int64_t classes = b.meta.num_classes, ignore = b.meta.ignore_index;
  const auto& t = b.targets;
  const auto bad = t.ne(ignore).logical_and(t.lt(0).logical_or(t.ge(classes))).nonzero().view(-1);
  if (bad.numel() == 0) return false;
  d.fault = "bad_label";
  d.module = "loss";
  d.operation = "cross_entropy / nll_loss";
  for (int64_t k = 0; k < bad.numel(); ++k) d.rows.push_back(bad[k].item<int64_t>());
  const int64_t value = t[d.rows[0]].item<int64_t>();
  d.detail = "target " + std::to_string(value) + " is outside [0, " + std::to_string(classes) +
             ") and is not the ignore index " + std::to_string(ignore);
  d.hint = "label " + std::to_string(value) + " is outside [0, " + std::to_string(classes) +
           "): fix the file, or pass --ignore-index (if it marks unlabelled samples) or the label policy "
           "(--negative-labels / --too-large-labels = ignore | drop), and keep label validation on";
  NameSamples(d, b);
  return true;
}

// The weights before the batch: a NaN there is no sample's doing.
bool WeightsVerdict(Diagnosis& d, const Bundle& b, const Rerun& rerun, const RerunMode& trained) {
  const std::optional<BadWeight> w = FirstNonFiniteWeight(b, rerun);
  if (!w) return false;
  d.fault = "non_finite_weights";
  d.parameter = w->name;
  d.module = rerun.ModuleOf(w->name);
  d.detail = w->name + " holds " + std::to_string(w->nans) + " NaN and " + std::to_string(w->infs) +
             " infinite value(s) of " + std::to_string(w->values) + " before the step ran" +
             (w->others > 0 ? " (and " + std::to_string(w->others) + " later parameter(s) or buffer(s) too)" : "") +
             "; " + LastChange(b.meta, w->name);
  d.modes = std::string(d.reproduced ? "fails" : "passes") + " in " + trained.Name() + " (as the step ran)";
  const BundleMeta& m = b.meta;
  const std::string resume = m.weights_own && m.last_good_step > 0
                                 ? "resume from a checkpoint written before step " + std::to_string(m.last_good_step)
                                 : "resume from a checkpoint older than these weights";
  d.hint = w->buffer ? "a BatchNorm running statistic is not finite: an earlier batch held non-finite values; " + resume
                     : "the weights are not finite before the step, whatever the batch: " + resume +
                           ", and lower --lr if an update made them so";
  return true;
}

// Input rows that hold a NaN or an infinity, and the first module whose output is not finite.
bool InputVerdict(Diagnosis& d, const Bundle& b, const Rerun& rerun, const RerunMode& trained) {
  const std::vector<int64_t> bad_inputs = NonFiniteRows(b.images);
  if (bad_inputs.empty()) return false;
  d.fault = "non_finite_input";
  d.rows = bad_inputs;
  d.detail = std::to_string(d.rows.size()) + " input image(s) hold NaN or infinite pixels";
  if (const std::optional<ForwardFinding> walk = rerun.FirstNonFiniteModule(trained, rerun.AllRows())) {
    d.module = walk->module;
    d.operation = walk->operation;
    d.detail += "; the first module whose output is not finite is " + walk->module;
  }
  d.hint =
      "the listed samples are not finite after decoding and normalisation: check those files and the "
      "normalisation statistics";
  NameSamples(d, b);
  return true;
}

// The step passes when re-run as it ran: what may differ from the run, and where to look.
void NotReproduced(Diagnosis& d, const Bundle& b, const Rerun& rerun, const RerunMode& trained) {
  d.fault = "not_reproduced";
  d.detail = "the step passes when re-run as it ran (" + trained.Name() + ", forward and backward, " +
             b.meta.weights_from + ")";
  if (!b.meta.weights_own) {
    d.detail += "; the failing step had newer weights than these";
    d.hint = "re-run `trainguard diagnose` where the newer weights are (a bundle of a step whose device survived " +
             std::string("holds its own), and compare with the other ranks' bundles");
  } else if (b.meta.device.rfind("cuda", 0) == 0 && !rerun.device().is_cuda()) {
    d.detail += " on the CPU; the step ran on " + b.meta.device;
    d.hint = "re-run `trainguard diagnose` on a GPU machine, and compare with the other ranks' bundles";
  } else if (b.meta.world > 1) {
    d.hint = "the step's loss and gradient are summed over the " + std::to_string(b.meta.world) +
             " ranks' batches and this bundle holds this rank's: the others' part may be the cause (a rank whose "
             "own loss was not finite writes its own bundle)";
  } else {
    d.hint =
        "the step passes when re-run as it ran: compare environment.txt with this machine (a kernel that is "
        "not deterministic, or memory that failed in the run)";
  }
}

// The step as it ran, then under the other precision and in eval mode: where it fails, or that
// it passes.
void StepVerdict(Diagnosis& d, const Bundle& b, const Rerun& rerun, const Budget& budget, const RerunMode& trained) {
  const RerunOutcome step = rerun.Step(trained, rerun.AllRows());
  d.reproduced = step.fails();
  const Comparison c = Compare(rerun, budget, trained, step.fails());
  d.modes = c.modes;
  d.differs = c.differs;
  if (!step.fails()) {
    NotReproduced(d, b, rerun, trained);
  } else {
    NotFinite(d, b, rerun, budget, trained, step);
    if (trained.bf16 && c.other_precision_fails == false && d.fault == "non_finite_activation") {
      const std::optional<ForwardFinding> walk = rerun.FirstNonFiniteModule(trained, rerun.AllRows());
      if (walk) d.differs += ": " + Bf16Reason(b, rerun, *walk, rerun.AllRows());
      d.hint =
          "bf16 holds less than fp32: train with --precision fp32, or check the listed samples for values "
          "beyond bf16's range (3.39e38) or its precision";
    }
    NameSamples(d, b);
  }
  d.cut_short = budget.exhausted();
}

}  // namespace

Diagnosis Diagnose(const Bundle& b, double budget_s) {
  const Budget budget(budget_s);
  Diagnosis d;
  d.meta = b.meta;
  const RerunMode trained{true, b.meta.precision == "bf16"};
  d.mode = trained.Name();
  const Reproduction r = Reproduce(b, trained, budget);
  d.reproduction = r.summary;
  d.device_assert = r.device_assert;
  d.reproduced = r.failed;
  if (BadLabelVerdict(d, b)) return d;
  // Localisation runs where the step ran when the reproduction left that device usable.
  const bool on_gpu = r.device_usable && b.meta.device.rfind("cuda", 0) == 0 && torch::cuda::is_available();
  const Rerun rerun(b, on_gpu ? torch::Device(b.meta.device) : torch::Device(torch::kCPU), budget);
  if (WeightsVerdict(d, b, rerun, trained) || InputVerdict(d, b, rerun, trained)) return d;
  StepVerdict(d, b, rerun, budget, trained);
  return d;
}

std::string FormatDiagnosis(const Diagnosis& d) {
  std::string out = "diagnosis of step " + std::to_string(d.meta.global_step) + " (epoch " +
                    std::to_string(d.meta.epoch + 1) + ") on rank " + std::to_string(d.meta.rank) + " of " +
                    std::to_string(d.meta.world) + ": " + d.fault + "\n";
  out += "  error seen: " + FirstLine(d.meta.error) + "\n";
  out += "  " + d.reproduction + "\n";
  out += std::string("  ") + (d.reproduced ? "reproduced" : "not reproduced") + " in " + d.mode + " (" +
         d.meta.weights_from + ")\n";
  if (!d.modes.empty()) out += "  modes: " + d.modes + "\n";
  if (!d.differs.empty()) out += "  " + d.differs + "\n";
  if (!d.device_assert.empty()) out += "  device assert: " + d.device_assert + "\n";
  if (!d.module.empty())
    out += "  module: " + d.module + (d.operation.empty() ? "" : ", operation: " + d.operation) + "\n";
  if (!d.parameter.empty()) out += "  parameter: " + d.parameter + "\n";
  out += "  " + d.detail + "\n";
  if (!d.weights_growth.empty()) out += "  weights: " + d.weights_growth + "\n";
  if (d.cut_short) {
    out +=
        "  cut short: the diagnosis's time (--fault-grace minus 5 s) ran out before every re-run; run `trainguard "
        "diagnose` on the bundle by hand for the rest\n";
  }
  for (size_t k = 0; k < d.rows.size(); ++k) {
    out += "  row " + std::to_string(d.rows[k]) + ": sample " + std::to_string(d.samples[k]) + ", file " + d.files[k] +
           ", label '" + d.labels[k] + "'\n";
  }
  out += "  hint: " + d.hint + "\n";
  return out;
}

std::string DiagnosisJson(const Diagnosis& d) {
  json samples = json::array();
  for (size_t k = 0; k < d.rows.size(); ++k) {
    samples.push_back(
        {{"row", d.rows[k]}, {"index", d.samples[k]}, {"source", d.files[k]}, {"raw_label", d.labels[k]}});
  }
  json j = {{"fault", d.fault},
            {"module", d.module},
            {"operation", d.operation},
            {"parameter", d.parameter},
            {"reproduced", d.reproduced},
            {"mode", d.mode},
            {"modes", d.modes},
            {"differs", d.differs},
            {"weights_growth", d.weights_growth},
            {"cut_short", d.cut_short},
            {"weights_own", d.meta.weights_own},
            {"precision", d.meta.precision},
            {"reproduction", d.reproduction},
            {"detail", d.detail},
            {"samples", samples},
            {"hint", d.hint},
            {"rank", d.meta.rank},
            {"world", d.meta.world},
            {"epoch", d.meta.epoch},
            {"global_step", d.meta.global_step},
            {"error", d.meta.error},
            {"weights_from", d.meta.weights_from},
            {"device_assert", d.device_assert},
            {"device", d.meta.device}};
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace trainguard
