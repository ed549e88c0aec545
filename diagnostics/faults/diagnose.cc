// Synchronous re-run and localisation of a failed step (see diagnose.h).
#include "diagnostics/faults/diagnose.h"

#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <sstream>

#include "trainer/core/log.h"
#include "trainer/model/hw3_net.h"

namespace trainguard {
namespace {

using json = nlohmann::json;
namespace F = torch::nn::functional;

Hw3Net LoadModel(const Bundle& b, torch::Device device) {
  Hw3Options o;
  o.in_channels = b.meta.in_channels;
  o.image_size = b.meta.image_size;
  o.width = b.meta.width;
  o.num_classes = b.meta.num_classes;
  Hw3Net model(o);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters()) p.value().copy_(b.weights.at(p.key()));
  for (auto& buf : model->named_buffers()) buf.value().copy_(b.weights.at(buf.key()));
  model->to(device);
  model->eval();  // running statistics: a subset of rows behaves as in the batch
  return model;
}

torch::Tensor Loss(const torch::Tensor& logits, const torch::Tensor& targets, int64_t ignore_index) {
  return F::cross_entropy(logits, targets,
                          F::CrossEntropyFuncOptions().ignore_index(ignore_index).reduction(torch::kSum));
}

// "torch::nn::Conv2dImpl" -> "Conv2d"
std::string TypeName(const torch::nn::Module& m) {
  std::string n = m.name();
  if (n.rfind("torch::nn::", 0) == 0) n = n.substr(11);
  if (n.size() > 4 && n.compare(n.size() - 4, 4, "Impl") == 0) n.resize(n.size() - 4);
  return n;
}

// Whether the rows fail (raise, or give a non-finite output or loss) on the CPU.
bool Fails(Hw3Net& model, const Bundle& b, const std::vector<int64_t>& rows) {
  auto idx = torch::tensor(rows, torch::kInt64);
  try {
    torch::NoGradGuard no_grad;
    auto logits = model->forward(b.images.index_select(0, idx));
    auto loss = Loss(logits, b.targets.index_select(0, idx), b.meta.ignore_index);
    return !torch::isfinite(logits).all().item<bool>() || !std::isfinite(loss.item<double>());
  } catch (const std::exception&) {
    return true;
  }
}

// Halves the failing set while one half still fails on its own.
std::vector<int64_t> Bisect(Hw3Net& model, const Bundle& b, std::vector<int64_t> rows) {
  while (rows.size() > 1) {
    const auto mid = rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2);
    std::vector<int64_t> left(rows.begin(), mid), right(mid, rows.end());
    if (Fails(model, b, left))
      rows = left;
    else if (Fails(model, b, right))
      rows = right;
    else
      break;  // only the two halves together fail
  }
  return rows;
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
};

// Reproduces the step's forward and loss on the device it ran on (if present).
Reproduction Reproduce(const Bundle& b) {
  torch::Device device = torch::kCPU;
  if (b.meta.device.rfind("cuda", 0) == 0 && torch::cuda::is_available()) device = torch::Device(b.meta.device);
  const std::string where = "re-run on " + device.str() + (device.is_cuda() ? " with CUDA_LAUNCH_BLOCKING=1" : "");
  CapturedOutput output;
  Reproduction r;
  try {
    Hw3Net model = LoadModel(b, device);
    torch::NoGradGuard no_grad;
    auto loss = Loss(model->forward(b.images.to(device)), b.targets.to(device), b.meta.ignore_index);
    const double value = loss.item<double>();  // synchronises
    r.summary = where + ": loss sum " + std::to_string(value);
  } catch (const std::exception& e) {
    r.summary = where + " raised: " + FirstLine(e.what());
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

// Rows of x (first dimension) that hold a non-finite value.
std::vector<int64_t> NonFiniteRows(const torch::Tensor& x) {
  auto rows = torch::isfinite(x).logical_not().flatten(1).any(1).nonzero().view(-1);
  return std::vector<int64_t>(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
}

// The model run module by module with a finiteness check after each.
struct ModuleWalk {
  std::string module;         // the first module whose output is not finite, or that raised
  std::string operation;      // its type
  std::string error;          // what it raised, if it raised
  std::vector<int64_t> rows;  // rows whose output is not finite there
};

std::optional<ModuleWalk> FirstFailingModule(Hw3Net& model, const torch::Tensor& images) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = images;
  std::vector<std::pair<std::string, torch::nn::Sequential>> stages{{"features", model->features},
                                                                    {"classifier", model->classifier}};
  for (auto& [stage, seq] : stages) {
    size_t i = 0;
    for (auto& child : *seq) {
      ModuleWalk walk;
      walk.operation = TypeName(*seq[i]);
      walk.module = stage + "." + std::to_string(i) + " (" + walk.operation + ")";
      ++i;
      try {
        x = child.forward(x);
      } catch (const std::exception& e) {
        walk.error = FirstLine(e.what());
        return walk;
      }
      walk.rows = NonFiniteRows(x);
      if (!walk.rows.empty()) return walk;
    }
  }
  return std::nullopt;
}

std::vector<int64_t> AllRows(const Bundle& b) {
  std::vector<int64_t> all(static_cast<size_t>(b.images.size(0)));
  std::iota(all.begin(), all.end(), 0);
  return all;
}

}  // namespace

Diagnosis Diagnose(const Bundle& b) {
  Diagnosis d;
  d.meta = b.meta;
  Reproduction r = Reproduce(b);
  d.reproduction = r.summary;
  d.device_assert = r.device_assert;
  const int64_t classes = b.meta.num_classes, ignore = b.meta.ignore_index;

  // Targets: the classic device-side assert.
  auto t = b.targets;
  auto bad = t.ne(ignore).logical_and(t.lt(0).logical_or(t.ge(classes))).nonzero().view(-1);
  if (bad.numel() > 0) {
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
    return d;
  }
  // Inputs, then the model module by module on the CPU.
  Hw3Net model = LoadModel(b, torch::kCPU);
  const std::vector<int64_t> bad_inputs = NonFiniteRows(b.images);
  const std::optional<ModuleWalk> walk = FirstFailingModule(model, b.images);
  if (!bad_inputs.empty()) {
    d.fault = "non_finite_input";
    d.rows = bad_inputs;
    d.detail = std::to_string(d.rows.size()) + " input image(s) hold NaN or infinite pixels";
    if (walk) {
      d.module = walk->module;
      d.operation = walk->operation;
      d.detail += "; the first module whose output is not finite is " + walk->module;
    }
    d.hint =
        "the listed samples are not finite after decoding and normalisation: check those files and the "
        "normalisation statistics";
    NameSamples(d, b);
    return d;
  }
  if (walk) {
    d.module = walk->module;
    d.operation = walk->operation;
    if (!walk->error.empty()) {
      d.fault = "exception";
      d.detail = walk->error;
      d.rows = Bisect(model, b, AllRows(b));
      d.hint = "the module raised on this batch; the error names the operation";
    } else {
      d.fault = "non_finite_activation";
      d.detail = "the output of " + walk->module + " is not finite for " + std::to_string(walk->rows.size()) +
                 " row(s) whose inputs are finite";
      d.rows = Bisect(model, b, walk->rows);
      d.hint =
          "weights or activations overflow: lower --lr, check the weights (resume from an earlier "
          "checkpoint), or check the listed samples for extreme values";
    }
    NameSamples(d, b);
    return d;
  }
  // The loss.
  d.module = "loss";
  d.operation = "cross_entropy / nll_loss";
  if (Fails(model, b, AllRows(b))) {
    d.fault = "non_finite_loss";
    d.detail = "the loss is not finite while every activation is";
    d.rows = Bisect(model, b, AllRows(b));
    d.hint = "check the listed samples' targets and the logits' scale";
    NameSamples(d, b);
    return d;
  }
  d.fault = "not_reproduced";
  d.module.clear();
  d.operation.clear();
  d.detail =
      "the batch passes on the CPU: the fault may depend on the device, on the newer weights the failing "
      "step had (weights: " +
      b.meta.weights_from + "), or on another rank's batch";
  d.hint = "re-run `trainguard diagnose` on a GPU machine, and compare with the other ranks' bundles";
  return d;
}

std::string FormatDiagnosis(const Diagnosis& d) {
  std::string out = "diagnosis of step " + std::to_string(d.meta.global_step) + " (epoch " +
                    std::to_string(d.meta.epoch + 1) + ") on rank " + std::to_string(d.meta.rank) + " of " +
                    std::to_string(d.meta.world) + ": " + d.fault + "\n";
  out += "  error seen: " + FirstLine(d.meta.error) + "\n";
  out += "  " + d.reproduction + "\n";
  if (!d.device_assert.empty()) out += "  device assert: " + d.device_assert + "\n";
  if (!d.module.empty())
    out += "  module: " + d.module + (d.operation.empty() ? "" : ", operation: " + d.operation) + "\n";
  out += "  " + d.detail + "\n";
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
